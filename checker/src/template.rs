//! Runtime templates: how to run a command in a rootfs, as words with
//! placeholders.
//!
//! A template is split into words the way a shell would (whitespace
//! separates; `'…'` and `"…"` quote; `\` escapes), but nothing is ever
//! run through a shell: each word becomes one argument, so the probe's
//! arguments reach the runtime byte for byte. Placeholders are replaced
//! inside words; `{cmd}` and `{host_cmd}` must be whole words and expand to
//! several (the probe and its arguments). `{{` and `}}` are literal braces.

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Every placeholder, with what it stands for (shown by `--help-template`
/// and in the book).
pub const PLACEHOLDERS: [(&str, &str); 15] = [
    ("{cmd}", "the probe and its arguments as the container sees them: /probe MODE ARGS… (whole word; several arguments)"),
    ("{host_cmd}", "the same with the probe's host path, for runtimes that keep the host's root (stages 01–03)"),
    ("{rootfs}", "a fresh busybox root filesystem with the probe at /probe"),
    ("{bundle}", "an OCI bundle directory: the checker writes its config.json (from `runc spec`, made docker-like) with the command, limits and volumes"),
    ("{name}", "a unique container name: minibox-check-PID-N"),
    ("{hostname}", "the host name to give the container"),
    ("{memory}", "the memory limit, in bytes (67108864: 64 MiB)"),
    ("{memory_mb}", "the same limit, in MiB with a unit (64m)"),
    ("{pids}", "the pids limit (16)"),
    ("{cgroup_parent}", "the checker's cgroup, relative to each hierarchy's root: put the container's cgroup below it"),
    ("{volume_rw}", "a host directory to mount read-write at /vol/rw"),
    ("{volume_ro}", "a host directory to mount read-only at /vol/ro"),
    ("{network}", "none, or bridge in the network scenario (run inside an `unshare --net` sandbox)"),
    ("{state}", "a private state directory for the runtime (runc --root {state})"),
    ("{minibox}", "the minibox stage binary (presets minibox and minibox:N)"),
];

/// A placeholder that stands for one piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Rootfs,
    Bundle,
    Name,
    Hostname,
    Memory,
    MemoryMb,
    Pids,
    CgroupParent,
    VolumeRw,
    VolumeRo,
    Network,
    State,
    Minibox,
}

impl Placeholder {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "rootfs" => Self::Rootfs,
            "bundle" => Self::Bundle,
            "name" => Self::Name,
            "hostname" => Self::Hostname,
            "memory" => Self::Memory,
            "memory_mb" => Self::MemoryMb,
            "pids" => Self::Pids,
            "cgroup_parent" => Self::CgroupParent,
            "volume_rw" => Self::VolumeRw,
            "volume_ro" => Self::VolumeRo,
            "network" => Self::Network,
            "state" => Self::State,
            "minibox" => Self::Minibox,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    /// `{cmd}`: `/probe` and the probe's arguments.
    Cmd,
    /// `{host_cmd}`: the probe's host path and its arguments.
    HostCmd,
    Pieces(Vec<Piece>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    words: Vec<Word>,
}

/// What the placeholders stand for in one run.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub name: String,
    pub hostname: String,
    pub memory: u64,
    pub pids: u64,
    pub cgroup_parent: String,
    pub volume_rw: PathBuf,
    pub volume_ro: PathBuf,
    pub network: String,
    pub state: PathBuf,
    pub minibox: Option<PathBuf>,
    /// The probe's arguments (after its own path).
    pub probe_args: Vec<OsString>,
    /// Where the probe is inside the container (`/probe`).
    pub probe_inside: PathBuf,
    /// Where it is on the host (`{rootfs}/probe`).
    pub probe_host: PathBuf,
}

impl Template {
    /// Parse a template; a bad one is a usage error naming the problem.
    pub fn parse(text: &str) -> Result<Self> {
        let words = split_words(text)?
            .into_iter()
            .map(|word| parse_word(&word))
            .collect::<Result<Vec<_>>>()?;
        if words.is_empty() {
            return Err(Error::Usage("the runtime template is empty".into()));
        }
        if matches!(words[0], Word::Cmd | Word::HostCmd) {
            return Err(Error::Usage(
                "the runtime template must start with the runtime's program, not {cmd}".into(),
            ));
        }
        Ok(Template {
            text: text.to_string(),
            words,
        })
    }

    /// The template as it was given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a placeholder appears anywhere in the template.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.words.iter().any(|word| match word {
            Word::Pieces(pieces) => pieces.contains(&Piece::Value(placeholder)),
            _ => false,
        })
    }

    pub fn uses_cmd(&self) -> bool {
        self.words.contains(&Word::Cmd)
    }

    pub fn uses_host_cmd(&self) -> bool {
        self.words.contains(&Word::HostCmd)
    }

    /// Check that the template can run the probe at all.
    pub fn validate_for_run(&self) -> Result<()> {
        let bundle = self.uses(Placeholder::Bundle);
        if !(self.uses_cmd() || self.uses_host_cmd() || bundle) {
            return Err(Error::Usage(format!(
                "the template {:?} never runs the probe: it needs {{cmd}} (with {{rootfs}}), {{host_cmd}} or {{bundle}}",
                self.text
            )));
        }
        if self.uses_cmd() && !(self.uses(Placeholder::Rootfs) || bundle) {
            return Err(Error::Usage(format!(
                "the template {:?} runs {{cmd}}, /probe inside {{rootfs}}, but never passes {{rootfs}}: add it, or use {{host_cmd}} for a runtime that keeps the host's root",
                self.text
            )));
        }
        Ok(())
    }

    /// The argument vector for one run.
    pub fn expand(&self, values: &Values) -> Result<Vec<OsString>> {
        let mut argv = Vec::new();
        for word in &self.words {
            match word {
                Word::Cmd => {
                    argv.push(values.probe_inside.clone().into_os_string());
                    argv.extend(values.probe_args.iter().cloned());
                }
                Word::HostCmd => {
                    argv.push(values.probe_host.clone().into_os_string());
                    argv.extend(values.probe_args.iter().cloned());
                }
                Word::Pieces(pieces) => {
                    let mut bytes = Vec::new();
                    for piece in pieces {
                        match piece {
                            Piece::Text(text) => bytes.extend_from_slice(text.as_bytes()),
                            Piece::Value(p) => bytes.extend(value_of(*p, values)?),
                        }
                    }
                    argv.push(OsString::from_vec(bytes));
                }
            }
        }
        Ok(argv)
    }
}

fn value_of(placeholder: Placeholder, values: &Values) -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = |p: &PathBuf| p.as_os_str().as_bytes().to_vec();
    Ok(match placeholder {
        Placeholder::Rootfs => path(&values.rootfs),
        Placeholder::Bundle => path(&values.bundle),
        Placeholder::Name => values.name.clone().into_bytes(),
        Placeholder::Hostname => values.hostname.clone().into_bytes(),
        Placeholder::Memory => values.memory.to_string().into_bytes(),
        Placeholder::MemoryMb => format!("{}m", values.memory >> 20).into_bytes(),
        Placeholder::Pids => values.pids.to_string().into_bytes(),
        Placeholder::CgroupParent => values.cgroup_parent.clone().into_bytes(),
        Placeholder::VolumeRw => path(&values.volume_rw),
        Placeholder::VolumeRo => path(&values.volume_ro),
        Placeholder::Network => values.network.clone().into_bytes(),
        Placeholder::State => path(&values.state),
        Placeholder::Minibox => match &values.minibox {
            Some(bin) => path(bin),
            None => return Err(Error::Usage(
                "{minibox} is only known with the minibox presets (--runtime minibox or minibox:N)"
                    .into(),
            )),
        },
    })
}

fn parse_word(word: &str) -> Result<Word> {
    if word == "{cmd}" {
        return Ok(Word::Cmd);
    }
    if word == "{host_cmd}" {
        return Ok(Word::HostCmd);
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(Error::Usage(format!(
                                "unclosed {{ in template word {word:?} (write {{{{ for a literal brace)"
                            )))
                        }
                    }
                }
                if name == "cmd" || name == "host_cmd" {
                    return Err(Error::Usage(format!(
                        "{{{name}}} must be a word of its own (it expands to several arguments), not part of {word:?}"
                    )));
                }
                let placeholder = Placeholder::parse(&name).ok_or_else(|| {
                    Error::Usage(format!(
                        "unknown placeholder {{{name}}} in the template (known: {})",
                        PLACEHOLDERS
                            .iter()
                            .map(|(p, _)| *p)
                            .collect::<Vec<_>>()
                            .join(" ")
                    ))
                })?;
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Value(placeholder));
            }
            '}' => {
                return Err(Error::Usage(format!(
                    "stray }} in template word {word:?} (write }}}} for a literal brace)"
                )))
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(Word::Pieces(pieces))
}

/// Split like a shell, without expansions: whitespace separates words,
/// `'…'` is literal, `"…"` allows `\"` `\\` `\$` `` \` ``, `\` escapes one
/// character outside quotes.
pub fn split_words(text: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(unclosed(text, '\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(unclosed(text, '"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(unclosed(text, '"')),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => {
                        return Err(Error::Usage(format!(
                            "the template {text:?} ends with a lone backslash"
                        )))
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn unclosed(text: &str, quote: char) -> Error {
    Error::Usage(format!("unclosed {quote} in the template {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            rootfs: "/w/rootfs".into(),
            memory: 64 << 20,
            probe_inside: "/probe".into(),
            probe_host: "/w/rootfs/probe".into(),
            probe_args: vec!["report".into(), "a b".into(), "".into()],
            ..Values::default()
        }
    }

    #[test]
    fn words_split_like_a_shell_without_expansions() {
        assert_eq!(
            split_words(r#"a 'b c' "d \"e\" $f" g\ h '' "#).unwrap(),
            ["a", "b c", r#"d "e" $f"#, "g h", ""]
        );
        assert!(split_words("a 'b").is_err());
        assert!(split_words("a \\").is_err());
    }

    #[test]
    fn cmd_expands_to_the_probe_and_each_argument() {
        let t = Template::parse("rt run --root={rootfs} -m {memory_mb} -- {cmd}").unwrap();
        let argv = t.expand(&values()).unwrap();
        let want: Vec<OsString> = [
            "rt",
            "run",
            "--root=/w/rootfs",
            "-m",
            "64m",
            "--",
            "/probe",
            "report",
            "a b",
            "",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(argv, want);
    }

    #[test]
    fn bad_templates_are_usage_errors() {
        for bad in [
            "rt {nope} {cmd}",
            "rt x{cmd}",
            "rt {rootfs",
            "rt }",
            "{cmd}",
            "",
        ] {
            assert!(
                matches!(Template::parse(bad), Err(Error::Usage(_))),
                "{bad:?} parsed"
            );
        }
        let no_probe = Template::parse("rt run {rootfs}").unwrap();
        assert!(no_probe.validate_for_run().is_err());
        let no_rootfs = Template::parse("rt run {cmd}").unwrap();
        assert!(no_rootfs.validate_for_run().is_err());
        assert!(Template::parse("rt run {host_cmd}")
            .unwrap()
            .validate_for_run()
            .is_ok());
    }

    #[test]
    fn braces_escape() {
        let t = Template::parse("rt {{x}} {cmd} {rootfs}").unwrap();
        assert_eq!(t.expand(&values()).unwrap()[1], OsString::from("{x}"));
    }
}
