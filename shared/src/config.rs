//! `InitConfig`: everything run tells init, as one typed value.
//!
//! run decides; init carries out. What init needs to know — the host name,
//! the command, the root to pivot into, the layer and volumes, the
//! environment — travels as one serde-serialised struct (the role runc's
//! `initConfig` plays), never as init's command line: argv is readable by
//! every user on the host through `/proc/<pid>/cmdline`, and a container's
//! environment may hold secrets. Each stage that adds an idea adds fields
//! here; no stage re-parses anything.
//!
//! Two transports, one format (JSON):
//! * stages 01–02 send it over the sync socket, in parts
//!   ([`crate::sync::Channel::send_config`]);
//! * from stage 03 on it goes through a pipe that init inherits as fd 3
//!   ([`ConfigPipe`]), a stream of any length ended by EOF.
//!
//! A config is refused, loudly, if it has a field this build does not know
//! or another version number: a config written by a different build of the
//! binary must not half-work.

use crate::error::{Error, Result};
use crate::trace::{self, TraceMode};
use crate::volumes::Volume;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Bumped whenever a field changes meaning.
pub const CONFIG_VERSION: u32 = 2;

/// The fd on which init finds the config pipe (stage 03 on), as Go's
/// `ExtraFiles[0]` in the tutorial minibox grew from.
pub const CONFIG_FD: RawFd = 3;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    pub version: u32,
    /// run's trace mode: with `off`, init does not send its steps.
    pub trace: TraceMode,
    /// 01: the container's host name.
    pub hostname: String,
    /// 01: the command and its arguments, byte for byte.
    #[serde(with = "os_strings")]
    pub command: Vec<OsString>,
    /// 01: the environment the command starts with (`KEY=VALUE`).
    pub env: Vec<String>,
    /// 04: the directory to `pivot_root` into (06 on: the overlay's `merged`).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// 06: the overlay layer init mounts at `root` before pivoting.
    #[serde(default)]
    pub layer: Option<LayerPaths>,
    /// 06: host directories to bind into the new root.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// 08: the container's side of its network (`None`: no network set up).
    #[serde(default)]
    pub network: Option<crate::network::Inside>,
    /// 08: files run wrote (`/etc/hosts`, …) to bind over the image's.
    #[serde(default)]
    pub files: Vec<crate::network::FileBind>,
    /// 08: join the network namespace run passed as fd 5
    /// (`--network container:NAME`).
    #[serde(default)]
    pub join_network: bool,
    /// 09: capabilities, masks, user, … (`None`: stages 01–08's full root).
    #[serde(default)]
    pub hardening: Option<crate::security::Hardening>,
    /// 07: `-w`: the command's working directory, made if missing.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// 07: `--tmpfs` mounts.
    #[serde(default)]
    pub tmpfs: Vec<crate::container::inside::Tmpfs>,
    /// 07: `--ulimit`s.
    #[serde(default)]
    pub ulimits: Vec<crate::container::inside::Ulimit>,
    /// 07: `--init`: init stays PID 1, the command runs as its child.
    #[serde(default)]
    pub init: bool,
    /// 07: `-u UID[:GID]` (stages 07 and 08; stage 09 has its own, with names).
    #[serde(default)]
    pub user: Option<(u32, u32)>,
    /// 07: `-t`: init opens a terminal of the container's own.
    #[serde(default)]
    pub terminal: bool,
}

/// Where a container's overlay lives (see [`crate::layer`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerPaths {
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl InitConfig {
    /// A config of this build's version: the fields every stage has.
    pub fn new(trace: TraceMode, hostname: String, command: Vec<OsString>) -> InitConfig {
        InitConfig {
            version: CONFIG_VERSION,
            trace,
            hostname,
            command,
            ..InitConfig::default()
        }
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Protocol(format!("encode InitConfig: {e}")))
    }

    pub fn from_json(json: &str) -> Result<InitConfig> {
        let config: InitConfig = serde_json::from_str(json).map_err(|e| {
            Error::Protocol(format!(
                "InitConfig from run is not one this build understands: {e}"
            ))
        })?;
        if config.version != CONFIG_VERSION {
            return Err(Error::Protocol(format!(
                "InitConfig version {} from run, this build speaks {CONFIG_VERSION}",
                config.version
            )));
        }
        if config.command.is_empty() {
            return Err(Error::Protocol("InitConfig without a command".into()));
        }
        Ok(config)
    }

    /// The directory to pivot into (stage 04 on): a config without one is
    /// a protocol error, not a panic.
    pub fn root(&self) -> Result<&std::path::Path> {
        self.root
            .as_deref()
            .ok_or_else(|| Error::Protocol("InitConfig without a root to pivot into".into()))
    }

    /// What the trace shows of a received config.
    pub fn summary(&self, bytes: usize) -> String {
        format!("{bytes} bytes: {}", trace::quote_list(&self.command))
    }
}

/// run's side of the config pipe (stage 03 on).
pub struct ConfigPipe {
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl ConfigPipe {
    pub fn new() -> Result<ConfigPipe> {
        let (read_end, write_end) = trace::step_shows(
            "pipe2(O_CLOEXEC)",
            unistd::pipe2(OFlag::O_CLOEXEC),
            |(r, w)| {
                Some(format!(
                    "read fd {}, write fd {}",
                    r.as_raw_fd(),
                    w.as_raw_fd()
                ))
            },
        )?;
        Ok(ConfigPipe {
            read_end,
            write_end,
        })
    }

    /// The end to pass to init (as [`CONFIG_FD`]).
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }

    /// Write the config and close both ends: init reads until EOF, so
    /// closing the write end is the "that's all" signal. A pipe holds 64
    /// KiB; a longer config is written while init reads, so init must be
    /// reading by now (it reads the pipe first thing).
    pub fn send(self, config: &InitConfig) -> Result<()> {
        let bytes = config.to_json()?.into_bytes();
        let fd = self.write_end.as_raw_fd();
        let step = format!("write(fd {fd}, {} bytes)", bytes.len());
        let mut written = 0;
        while written < bytes.len() {
            match unistd::write(&self.write_end, &bytes[written..]) {
                Ok(n) => written += n,
                Err(Errno::EINTR) => continue,
                // EPIPE: init died (Rust ignores SIGPIPE, so this is an error).
                Err(errno) => return trace::step(step, Err(errno)),
            }
        }
        trace::note(step, Some("InitConfig".into()));
        drop(self.read_end);
        trace::step(
            format!("close(fd {fd})"),
            unistd::close(self.write_end.into_raw_fd()),
        )
    }
}

/// init's side: read the config from `fd` until run closes the write end.
pub fn receive(fd: RawFd) -> Result<InitConfig> {
    // SAFETY: run placed the pipe's read end at `fd` for us (see
    // `process::Spawn::start`); nothing else in init owns it.
    let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match unistd::read(pipe.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(errno) => return trace::step(format!("read(fd {fd})"), Err(errno)),
        }
    }
    let step = format!("read(fd {fd}) until EOF");
    let json = String::from_utf8(bytes).map_err(|_| {
        trace::failed(&step, Errno::EPROTO);
        Error::Protocol("the config pipe held bytes that are not UTF-8 JSON".into())
    })?;
    let config = InitConfig::from_json(&json).inspect_err(|_| {
        trace::failed(&step, Errno::EPROTO);
    })?;
    trace::note(step, Some(config.summary(json.len())));
    Ok(config)
}

/// Arguments are bytes, not text: each one travels as a JSON string when it
/// is UTF-8 and as an array of bytes when it is not, so `\xff` survives.
mod os_strings {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Arg {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(args: &[OsString], s: S) -> Result<S::Ok, S::Error> {
        let args: Vec<Arg> = args
            .iter()
            .map(|a| match a.to_str() {
                Some(text) => Arg::Text(text.to_string()),
                None => Arg::Bytes(a.as_bytes().to_vec()),
            })
            .collect();
        args.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OsString>, D::Error> {
        let args = Vec::<Arg>::deserialize(d)?;
        Ok(args
            .into_iter()
            .map(|a| match a {
                Arg::Text(text) => OsString::from(text),
                Arg::Bytes(bytes) => OsString::from_vec(bytes),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn sample() -> InitConfig {
        let mut config = InitConfig::new(
            TraceMode::Tree,
            "box".into(),
            vec![
                "sh".into(),
                "".into(),
                "a  b".into(),
                "q'\"".into(),
                "héllo".into(),
                OsString::from_vec(vec![0xff, 0xfe]),
            ],
        );
        config.env = vec!["PATH=/bin".into()];
        config
    }

    #[test]
    fn every_byte_of_the_command_survives() {
        let config = sample();
        let back = InitConfig::from_json(&config.to_json().unwrap()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let mut json: serde_json::Value =
            serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        json["seccomp"] = serde_json::json!("unconfined");
        let err = InitConfig::from_json(&json.to_string()).unwrap_err();
        assert!(err.to_string().contains("unknown field `seccomp`"), "{err}");
    }

    #[test]
    fn another_version_is_refused() {
        let mut config = sample();
        config.version = CONFIG_VERSION + 1;
        let err = InitConfig::from_json(&config.to_json().unwrap()).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
    }
}
