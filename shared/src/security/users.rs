//! `-u USER[:GROUP]`: names are the image's, not the host's.
//!
//! `nobody` may be 65534 on the host and 99 in an old image; a user the
//! image defines may not exist on the host at all. So names are looked up
//! in the container's own `/etc/passwd` and `/etc/group`, by init, after
//! `pivot_root` — never by `run` on the host.

use crate::error::{Error, Result};
use crate::trace;
use serde::{Deserialize, Serialize};

/// Who the command runs as, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
}

/// `-u` as typed: `alice`, `1000`, `alice:staff`, `1000:50`.
pub fn parse(text: &str) -> std::result::Result<UserSpec, String> {
    let (user, group) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let valid = |s: &str| !s.is_empty() && !s.contains(['\n', '/']);
    if !valid(user) || group.is_some_and(|g| !valid(g)) {
        return Err("expected USER[:GROUP], names or numbers".into());
    }
    Ok(UserSpec {
        user: user.into(),
        group: group.map(Into::into),
    })
}

/// The ids `UserSpec` names in this root.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: every group of `/etc/group` listing the user.
    pub groups: Vec<u32>,
}

/// Look `spec` up in `passwd` and `group` (the texts of the image's files).
/// A number that is not in `passwd` is still a valid uid, with gid 0
/// unless a group is given (docker's rule, and runc's default).
pub fn resolve(
    spec: &UserSpec,
    passwd: &str,
    group: &str,
) -> std::result::Result<Resolved, String> {
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == spec.user || f[2] == spec.user));
    let (uid, primary, name) = match entry {
        Some(f) => (
            f[2].parse::<u32>()
                .map_err(|_| format!("bad uid in /etc/passwd for {}", f[0]))?,
            f[3].parse::<u32>()
                .map_err(|_| format!("bad gid in /etc/passwd for {}", f[0]))?,
            Some(f[0].to_string()),
        ),
        None => {
            let uid = spec
                .user
                .parse::<u32>()
                .map_err(|_| format!("no user {:?} in the image's /etc/passwd", spec.user))?;
            (uid, 0, None)
        }
    };
    let groups: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect()).collect();
    let gid = match &spec.group {
        None => primary,
        Some(g) => match groups
            .iter()
            .find(|f| f.len() >= 3 && (f[0] == g || f[2] == g))
        {
            Some(f) => f[2]
                .parse()
                .map_err(|_| format!("bad gid in /etc/group for {}", f[0]))?,
            None => g
                .parse()
                .map_err(|_| format!("no group {g:?} in the image's /etc/group"))?,
        },
    };
    let mut supplementary = vec![gid];
    if let Some(name) = name {
        for f in groups.iter().filter(|f| f.len() >= 4) {
            if f[3].split(',').any(|member| member == name) {
                if let Ok(id) = f[2].parse::<u32>() {
                    if !supplementary.contains(&id) {
                        supplementary.push(id);
                    }
                }
            }
        }
    }
    Ok(Resolved {
        uid,
        gid,
        groups: supplementary,
    })
}

/// In init, after `pivot_root`: read the image's files and resolve.
pub fn resolve_in_root(spec: &UserSpec) -> Result<Resolved> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let resolved =
        resolve(spec, &read("/etc/passwd"), &read("/etc/group")).map_err(Error::Usage)?;
    trace::note(
        format!(
            "look up {:?} in /etc/passwd and /etc/group",
            spec_text(spec)
        ),
        Some(format!(
            "uid {}, gid {}, groups {:?}",
            resolved.uid, resolved.gid, resolved.groups
        )),
    );
    Ok(resolved)
}

fn spec_text(spec: &UserSpec) -> String {
    match &spec.group {
        Some(g) => format!("{}:{g}", spec.user),
        None => spec.user.clone(),
    }
}

/// Become `user`: groups first (only root may change them), then the gid,
/// the uid last. For a uid other than 0 the kernel empties the permitted
/// and effective sets here; the bounding set stays as it was.
pub fn become_user(user: &Resolved) -> Result<()> {
    use nix::unistd::{Gid, Uid};
    let groups: Vec<Gid> = user.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    trace::step(
        format!("setgroups({:?})", user.groups),
        nix::unistd::setgroups(&groups),
    )?;
    let gid = Gid::from_raw(user.gid);
    trace::step(
        format!("setresgid({gid}, {gid}, {gid})"),
        nix::unistd::setresgid(gid, gid, gid),
    )?;
    crate::console::hand_over(user.uid);
    let uid = Uid::from_raw(user.uid);
    trace::step(
        format!("setresuid({uid}, {uid}, {uid})"),
        nix::unistd::setresuid(uid, uid, uid),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nstaff:x:50:alice,bob\nwheel:x:10:alice\n";

    fn spec(text: &str) -> UserSpec {
        parse(text).unwrap()
    }

    #[test]
    fn names_resolve_in_the_images_files_with_supplementary_groups() {
        let r = resolve(&spec("alice"), PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.groups), (1000, 1000, vec![1000, 50, 10]));
        let r = resolve(&spec("alice:staff"), PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 50));
    }

    #[test]
    fn numbers_need_no_entry() {
        let r = resolve(&spec("4242"), PASSWD, GROUP).unwrap();
        // docker: `-u 4242` with no passwd entry runs in group 0.
        assert_eq!((r.uid, r.gid, r.groups), (4242, 0, vec![0]));
        let r = resolve(&spec("65534:7"), PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (65534, 7));
    }

    #[test]
    fn unknown_names_are_one_line_errors() {
        let e = resolve(&spec("mallory"), PASSWD, GROUP).unwrap_err();
        assert_eq!(e, "no user \"mallory\" in the image's /etc/passwd");
        assert!(resolve(&spec("alice:nogroup"), PASSWD, GROUP).is_err());
        assert!(parse("").is_err() && parse("a:").is_err());
    }
}
