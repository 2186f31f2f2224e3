//! Network sandboxes: a rule of the machines minibox is developed on, and
//! good practice anywhere. Bridges, addresses, routes and nftables rules
//! are made only inside network namespaces a test made itself, and traffic
//! goes only to addresses inside them.
//!
//! A [`Sandbox`] runs a bash script under `unshare --net --mount
//! --propagation private --fork`: its "host" is a fresh network namespace
//! with `lo` up, which vanishes with everything in it when the script ends.
//! The script gets `$B` (the stage binary), `$BB` (the rootfs's static
//! busybox), `$UDP_ECHO` (a static UDP server for containers), a state root
//! of its own, and shell functions:
//!
//! * `upstream` — a second namespace standing for the outside world, joined
//!   to the sandbox's host by a veth (host 192.0.2.1/24, upstream
//!   192.0.2.2/24), serving `http://192.0.2.2/cgi-bin/ip`, which answers
//!   with the address the request came from;
//! * `net_state` — the host's links, addresses, routes, nftables ruleset and
//!   forwarding sysctl, to compare before and after.

use crate::{default_rootfs, stage_bin, test_env};
use std::path::PathBuf;
use std::process::{Command, Output};

const PRELUDE: &str = r#"
set -u
ip link set lo up
# The host's resolv.conf varies from machine to machine; in this private
# mount namespace the sandbox has its own, so traces are the same anywhere.
printf 'nameserver 192.0.2.53\n' > "$SANDBOX/resolv.conf"
[ -e /etc/resolv.conf ] && mount --bind "$SANDBOX/resolv.conf" /etc/resolv.conf
upstream() {
    unshare --net sleep 100000 & UPSTREAM=$!
    for _ in $(seq 100); do [ "$(readlink /proc/$UPSTREAM/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.01; done
    ip link add up0 type veth peer name up1 netns "$UPSTREAM"
    ip addr add 192.0.2.1/24 dev up0
    ip link set up0 up
    nsenter --net=/proc/$UPSTREAM/ns/net sh -c 'ip link set lo up; ip addr add 192.0.2.2/24 dev up1; ip link set up1 up'
    mkdir -p "$SANDBOX/web/cgi-bin"
    printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > "$SANDBOX/web/cgi-bin/ip"
    chmod +x "$SANDBOX/web/cgi-bin/ip"
    nsenter --net=/proc/$UPSTREAM/ns/net "$BB" httpd -p 192.0.2.2:80 -h "$SANDBOX/web"
    UPSTREAM_NS=$(readlink /proc/$UPSTREAM/ns/net)
    trap 'stop_upstream' EXIT
}
# Everything in the upstream namespace: its sleep, and the httpd that
# daemonized itself there (busybox httpd forks to the background).
stop_upstream() {
    for pid in /proc/[0-9]*; do
        [ "$(readlink "$pid/ns/net" 2>/dev/null)" = "$UPSTREAM_NS" ] && kill "${pid#/proc/}" 2>/dev/null
    done
    return 0
}
net_state() {
    ip -j link | sed 's/"ifindex":[0-9]*,//g'
    # DAD of an IPv6 address may end between two readings: not a change.
    ip -j addr | sed -e 's/"ifindex":[0-9]*,//g' -e 's/"tentative":true,//g'
    ip -j route
    nft list ruleset
    cat /proc/sys/net/ipv4/ip_forward
}
"#;

/// A fresh network sandbox for one test.
pub struct Sandbox {
    dir: tempfile::TempDir,
    stage: &'static str,
}

impl Sandbox {
    pub fn new(stage: &'static str) -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("minibox-netns-")
                .tempdir()
                .expect("a sandbox directory"),
            stage,
        }
    }

    /// The sandbox's state root (`MINIBOX_ROOT` of its runs).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Run `script` with bash in the sandbox.
    pub fn run(&self, script: &str) -> Output {
        let udp_echo = self.dir.path().join("bin/udp_echo");
        if !udp_echo.exists() {
            std::fs::create_dir_all(udp_echo.parent().expect("a parent")).expect("mkdir bin");
            std::fs::write(&udp_echo, crate::UDP_ECHO).expect("write udp_echo");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&udp_echo, std::fs::Permissions::from_mode(0o755))
                .expect("chmod udp_echo");
        }
        let mut command = Command::new("unshare");
        crate::without_inherited_fds(&mut command);
        command
            .args(["--net", "--mount", "--propagation", "private", "--fork"])
            .args(["bash", "-c"])
            .arg(format!("{PRELUDE}\n{script}"))
            .env("B", stage_bin(self.stage))
            .env("BB", default_rootfs().join("bin/busybox"))
            .env("UDP_ECHO", &udp_echo)
            .env("SANDBOX", self.dir.path())
            .env("MINIBOX_ROOT", self.root())
            .env(
                "MINIBOX_CGROUP_PARENT",
                // A parent of the sandbox's own: a cleanup in one sandbox
                // must not judge another sandbox's cgroups.
                format!(
                    "{}-{}",
                    test_env().cgroup_parent,
                    self.dir
                        .path()
                        .file_name()
                        .map_or("net".into(), |n| n.to_string_lossy().into_owned())
                ),
            )
            .env("NO_COLOR", "1")
            .env("MINIBOX_TRACE", "off")
            .output()
            .expect("unshare (util-linux)")
    }
}
