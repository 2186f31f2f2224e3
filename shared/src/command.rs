//! The user's command: its environment, found on `PATH`, and finally
//! exec'd so that it *becomes* PID 1.

use crate::error::{Error, Result};
use crate::process;
use crate::sync::RunLink;
use crate::trace;
use nix::errno::Errno;
use nix::unistd::{self, AccessFlags};
use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `PATH` inside the container, the one docker sets.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find `program` the way `execvp` would: a name with a `/` is taken as is,
/// anything else is tried in each directory of the environment's `PATH`
/// in turn, the first match winning. (Unlike `execvp`, an empty `PATH`
/// entry is skipped rather than meaning the current directory.)
pub fn lookup(program: &OsStr, env: &[String]) -> Result<PathBuf> {
    let name = program.to_string_lossy().into_owned();
    let has_slash = program.as_bytes().contains(&b'/');
    let step = if has_slash {
        format!("access({}, X_OK)", trace::quote(program))
    } else {
        format!("lookup {} in PATH", trace::quote(program))
    };
    let candidates: Vec<PathBuf> = if has_slash {
        vec![PathBuf::from(program)]
    } else {
        path_of(env)
            .split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| Path::new(dir).join(program))
            .collect()
    };
    let mut found_but_not_executable = false;
    for candidate in candidates {
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if meta.is_file() && unistd::access(&candidate, AccessFlags::X_OK).is_ok() {
            trace::note(step, Some(candidate.display().to_string()));
            return Ok(candidate);
        }
        found_but_not_executable = true;
    }
    if found_but_not_executable {
        trace::failed(step, Errno::EACCES);
        Err(Error::CannotExecute(name))
    } else {
        trace::failed(step, Errno::ENOENT);
        Err(Error::CommandNotFound(name))
    }
}

/// The `PATH` of an environment (docker's default when it has none).
pub fn path_of(env: &[String]) -> &str {
    env.iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// The environment a container starts with: docker's minimal set, not the
/// host's (which would leak the host's `PATH`, `HOME`, `SSH_AUTH_SOCK`, …).
/// With a terminal (`-t`) the command needs `TERM` to be usable.
pub fn container_env(hostname: &str, terminal: bool) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
        "HOME=/root".to_string(),
    ];
    if terminal {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        env.push(format!("TERM={term}"));
    }
    env
}

/// `base` with `overrides` applied: a key set in `overrides` replaces the
/// one in `base`, and among `overrides` the later one wins. Every key
/// appears once, so any reader (getenv, `lookup`) sees the same value.
pub fn merge_env(base: Vec<String>, overrides: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let mut env: Vec<String> = base
        .into_iter()
        .filter(|b| !overrides.iter().any(|o| key(o) == key(b)))
        .collect();
    for (i, kv) in overrides.iter().enumerate() {
        if !overrides[i + 1..].iter().any(|later| key(later) == key(kv)) {
            env.push(kv.clone());
        }
    }
    env
}

/// The last step of init: replace ourselves with the user's command.
/// See [`process::prepare_exec`] for what is cleaned up first; the sync
/// socket is close-on-exec, so its EOF tells run the exec worked.
pub fn exec(run: &RunLink, command: &[OsString], env: &[String]) -> Result<Infallible> {
    let program = lookup(&command[0], env)?;
    let argv = process::to_cstrings(command)?;
    let env_os: Vec<OsString> = env.iter().map(OsString::from).collect();
    let envp = process::to_cstrings(&env_os)?;
    let program_c = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| Error::Usage("program path contains a NUL byte".into()))?;

    process::prepare_exec()?;

    let step = format!(
        "execve({}, {})",
        trace::quote(&program),
        trace::quote_list(command)
    );
    if crate::container::reaper::enabled() {
        return crate::container::reaper::run_command(run, &program_c, &argv, &envp, &step);
    }
    trace::note(step.clone(), None);
    run.ready_to_exec()?;
    let errno = match unistd::execve(&program_c, &argv, &envp) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    trace::failed(&step, errno);
    Err(match errno {
        Errno::ENOENT => Error::CommandNotFound(program.display().to_string()),
        Errno::EACCES | Errno::ENOEXEC => Error::CannotExecute(program.display().to_string()),
        _ => Error::Sys { step, errno },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_reports_not_found_and_not_executable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let env = vec![format!("PATH={}", dir.path().display())];
        assert!(matches!(
            lookup(OsStr::new("plain"), &env),
            Err(Error::CannotExecute(_))
        ));
        assert!(matches!(
            lookup(OsStr::new("absent"), &env),
            Err(Error::CommandNotFound(_))
        ));
    }

    #[test]
    fn later_settings_win_and_each_key_appears_once() {
        let env = merge_env(
            container_env("box", false),
            &["PATH=/x".into(), "A=1".into(), "A=2".into()],
        );
        assert_eq!(
            env,
            ["HOSTNAME=box", "HOME=/root", "PATH=/x", "A=2"].map(String::from)
        );
        assert_eq!(path_of(&env), "/x");
    }
}
