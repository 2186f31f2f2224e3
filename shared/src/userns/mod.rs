//! Stage 10's idea: a user namespace, so root in the container is nobody
//! on the host.
//!
//! Inside a user namespace a process can hold every capability — over the
//! namespaces that user namespace owns, and over files whose owners are
//! mapped into it — and none over the host. Its ids are translated by the
//! namespace's maps ([`maps`]): container root is host uid 100000 (as host
//! root with `--userns=remap`), or the very user who ran the container
//! (rootless).
//!
//! Making one takes three processes, as runc's `nsexec` does
//! ([`nsexec`]): only a process *outside* the new user namespace may write
//! its maps, and a new PID namespace applies only to children.

pub mod layer;
pub mod maps;
pub mod mounts;
pub mod nsexec;

pub use layer::{Lower, PreparedLayer};
pub use maps::{IdMaps, IdRange, Writer};

use crate::error::{Error, Result};
use crate::trace;

/// `--userns`: whether and how a container gets a user namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UsernsMode {
    /// Container 0–65535 → a subordinate range (as root: /etc/subuid's
    /// `minibox` entry; as a user: that user's own, via newuidmap).
    #[default]
    Remap,
    /// Container root is the calling user and no other id exists inside.
    Single,
    /// No user namespace: root inside is host root (stages 01–09).
    Host,
}

/// Stage 10's flag.
#[derive(clap::Args, Clone, Debug)]
pub struct UsernsOptions {
    /// The container's user namespace: `remap` (container 0–65535 → a
    /// range of /etc/subuid), `single` (container root = you, nothing
    /// else), `host` (none: container root is host root; root only)
    #[arg(long, value_enum, default_value_t, value_name = "MODE")]
    pub userns: UsernsMode,
}

impl UsernsOptions {
    /// The container's user namespace (`None` with `--userns=host`),
    /// decided before anything exists: a missing range or helper is a
    /// one-line error here, not a half-made container.
    pub fn user_namespace(&self) -> Result<Option<UserNamespace>> {
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        let maps = match (self.userns, uid.is_root()) {
            (UsernsMode::Host, true) => return Ok(None),
            (UsernsMode::Host, false) => {
                return Err(Error::Usage(
                    "--userns=host needs root: an ordinary user's container always has a user namespace".into(),
                ))
            }
            (UsernsMode::Remap, true) => maps::remapped_root()?,
            (UsernsMode::Remap, false) => {
                let user = nix::unistd::User::from_uid(uid)
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "uid {uid} has no name in /etc/passwd: newuidmap needs one (or use --userns=single)"
                        ))
                    })?;
                maps::rootless(&user.name, uid.as_raw(), gid.as_raw())?
            }
            (UsernsMode::Single, _) => maps::single(uid.as_raw(), gid.as_raw()),
        };
        trace::note(
            format!("--userns={}", self.userns.name()),
            Some(format!(
                "uid map {:?}, gid map {:?}, setgroups {}",
                maps::map_text(&maps.uids).trim_end().replace('\n', "; "),
                maps::map_text(&maps.gids).trim_end().replace('\n', "; "),
                if maps.deny_setgroups { "deny" } else { "allow" }
            )),
        );
        Ok(Some(UserNamespace { maps, layer: None }))
    }
}

impl UsernsMode {
    fn name(self) -> &'static str {
        match self {
            UsernsMode::Remap => "remap",
            UsernsMode::Single => "single",
            UsernsMode::Host => "host",
        }
    }
}

/// A container's user namespace, as run plans it.
#[derive(Debug)]
pub struct UserNamespace {
    pub maps: IdMaps,
    layer: Option<PreparedLayer>,
}

impl UserNamespace {
    /// Make the container's layer usable by its root (see [`layer`]) and
    /// rewrite `config`'s layer, root and files to where init finds them.
    pub fn prepare_layer(&mut self, config: &mut crate::config::InitConfig) -> Result<()> {
        let Some(host) = config.layer.clone() else {
            return Err(Error::Protocol("a container without a layer".into()));
        };
        // The image must be shifted when container root is not its owner on
        // the host: as host root (remap) that is every image; rootless, the
        // user's own images already belong to container root.
        let image_owner = std::fs::metadata(&host.lower)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .map_err(|e| Error::io(format!("stat {}", host.lower.display()), e))?;
        let how = if nix::unistd::geteuid().is_root()
            && self.maps.host_uid(image_owner) != Some(image_owner)
        {
            Lower::Shifted
        } else {
            Lower::AsIs
        };
        let prepared = PreparedLayer::prepare(&host, &self.maps, how)?;
        let paths = prepared.paths_for_init(&host);
        config.root = Some(paths.merged.clone());
        config.layer = Some(paths);
        for file in &mut config.files {
            file.host = prepared.reachable(&file.host);
        }
        self.layer = Some(prepared);
        Ok(())
    }

    /// The prepared layer, if any.
    pub fn layer(&self) -> Option<&PreparedLayer> {
        self.layer.as_ref()
    }
}
