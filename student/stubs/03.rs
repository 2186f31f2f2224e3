//! Stage 03's stubs (student mode only; see tests/tools/student.py).
//! They do what the reference tutorial does: the command travels as one
//! string, words joined with spaces and split again at the other end, so
//! an argument with a space, an empty one or one that is not UTF-8 does
//! not arrive as it was sent.

// @stub shared/src/config.rs ConfigPipe::send
// @section The protocol
    /// Write the config and close both ends: init reads until EOF, so
    /// closing the write end is the "that's all" signal.
    ///
    /// Stub: the command goes as one space-joined (lossy UTF-8) string.
    pub fn send(self, config: &InitConfig) -> Result<()> {
        crate::student::not_written("03", "ConfigPipe::send", "The protocol");
        let mut naive = config.clone();
        let words: Vec<String> = config
            .command
            .iter()
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        naive.command = vec![words.join(" ").into()];
        let mut pipe = std::fs::File::from(self.write_end);
        std::io::Write::write_all(&mut pipe, naive.to_json()?.as_bytes())
            .map_err(|e| Error::io("write the config pipe", e))
    }

// @stub shared/src/config.rs receive
// @section The protocol
/// init's side: read the config from `fd` until run closes the write end.
///
/// Stub: splits the command on whitespace.
pub fn receive(fd: RawFd) -> Result<InitConfig> {
    crate::student::not_written("03", "config::receive", "The protocol");
    // SAFETY: run placed the pipe's read end at `fd` for us (see
    // `process::Spawn::start`); nothing else in init owns it.
    let mut pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut json = String::new();
    std::io::Read::read_to_string(&mut pipe, &mut json)
        .map_err(|e| Error::io("read the config pipe", e))?;
    let mut config = InitConfig::from_json(&json)?;
    let line = config
        .command
        .first()
        .map(|word| word.to_string_lossy().into_owned())
        .unwrap_or_default();
    config.command = line.split_whitespace().map(Into::into).collect();
    Ok(config)
}
