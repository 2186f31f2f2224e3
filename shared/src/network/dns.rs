//! Name files for a container: `/etc/hosts`, `/etc/resolv.conf`,
//! `/etc/hostname`, written by run into the container's directory and
//! bind-mounted over the image's by init.
//!
//! Names are resolved through `/etc/hosts` rather than a DNS server of our
//! own: nothing to run and nothing to keep alive, and busybox's resolver
//! reads it. The price: a container started later is added to the others'
//! files by rewriting them in place ([`rewrite_in_place`]) — the same file,
//! since it is bind-mounted (a rename would leave the container the old one).

use super::ipam::Lease;
use crate::error::Result;
use crate::trace;
use std::path::Path;

/// `/etc/hosts` for `own` among `peers` (the leases on its network).
pub fn hosts(own: &Lease, peers: &[Lease]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let line = |l: &Lease| {
        let mut names = vec![l.hostname.clone()];
        if l.name != l.hostname {
            names.push(l.name.clone());
        }
        format!("{}\t{}\n", l.address, names.join(" "))
    };
    text.push_str(&line(own));
    for peer in peers.iter().filter(|p| p.id != own.id) {
        text.push_str(&line(peer));
    }
    text
}

/// `/etc/resolv.conf`: the host's, minus nameservers on loopback (they
/// mean "this host", which is not the container). If none remain, no
/// nameserver at all — never a public resolver the user did not choose.
pub fn resolv_conf(host: &str) -> (String, Option<String>) {
    let mut out = String::new();
    let mut dropped = Vec::new();
    let mut kept = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let server = words.next().unwrap_or_default();
            if server.starts_with("127.") || server == "::1" {
                dropped.push(server.to_string());
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    let note = (kept == 0).then(|| {
        if dropped.is_empty() {
            "the host's resolv.conf names no nameserver: the container has none".to_string()
        } else {
            format!(
                "the host's only nameservers are on loopback ({}): the container has none",
                dropped.join(", ")
            )
        }
    });
    (out, note)
}

/// Write a name file into the container's directory (world-readable: the
/// container's own users read it; the directory itself is private).
pub fn write(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let result = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    trace::step(
        format!(
            "write({:?}, {} bytes, 0644)",
            path.display().to_string(),
            text.len()
        ),
        result.map_err(|e| crate::error::errno_of(&e)),
    )
}

/// Rewrite a bind-mounted file in place (truncate and write the same
/// inode), traced.
pub fn rewrite_in_place(path: &Path, text: &str) -> Result<()> {
    let result = std::fs::File::options()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    trace::step(
        format!("rewrite {:?} in place", path.display().to_string()),
        result.map_err(|e| crate::error::errno_of(&e)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn lease(id: &str, name: &str, last: u8) -> Lease {
        Lease {
            id: id.into(),
            name: name.into(),
            hostname: id[..4].into(),
            network: "bridge".into(),
            address: Ipv4Addr::new(10, 123, 0, last),
            ports: vec![],
        }
    }

    #[test]
    fn hosts_name_every_container_of_the_network() {
        let a = lease("aaaaaaaaaaaa", "web", 2);
        let b = lease("bbbbbbbbbbbb", "db", 3);
        let text = hosts(&a, &[a.clone(), b]);
        assert!(text.contains("10.123.0.2\taaaa web\n"), "{text}");
        assert!(text.contains("10.123.0.3\tbbbb db\n"), "{text}");
        assert_eq!(text.matches("10.123.0.2").count(), 1);
    }

    #[test]
    fn loopback_nameservers_are_dropped_and_that_is_said() {
        let (text, note) =
            resolv_conf("search lan\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n");
        assert_eq!(text, "search lan\nnameserver 192.0.2.53\n");
        assert!(note.is_none());
        let (text, note) = resolv_conf("nameserver 127.0.0.53\n");
        assert_eq!(text, "");
        assert!(note.unwrap().contains("127.0.0.53"));
    }
}
