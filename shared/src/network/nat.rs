//! NAT and forwarding: minibox's own nftables table, `inet minibox`.
//!
//! The table is written whole, from the ledger, every time something
//! changes (`nft -f -` applies a file atomically: the old table and the new
//! are never half-merged). One table means one place to look
//! (`nft list table inet minibox`) and one thing to remove.
//!
//! ```text
//! prerouting (nat)   to a host address, port P   → DNAT to container:port
//! output (nat)       the same for the host's own packets (127.0.0.1:P too)
//! postrouting (nat)  from a subnet, out another way  → masquerade (containers
//!                      reach the world as the host)
//!                    DNAT'd from 127.0.0.1 onto a bridge → masquerade to the
//!                      bridge's address (route_localnet lets 127.0.0.1 leave
//!                      lo at all); a container reaching its own published
//!                      port through the host (hairpin) → masquerade too, so
//!                      the reply comes back the way it went
//! forward (filter)   accept what goes into or out of a minibox bridge
//! ```
//!
//! A published port reachable on 127.0.0.1 takes three things: the DNAT in
//! `output` (locally made packets never pass `prerouting`), `route_localnet`
//! on the bridge, and the masquerade. docker can do the same, or run a
//! userland proxy per port; a proxy is one more process per port to keep
//! alive, so minibox uses the kernel.

use super::ipam::{proto_name, Ledger, NetworkDef};
use crate::error::{Error, Result};
use crate::trace;
use std::io::Write;
use std::process::{Command, Stdio};

pub const TABLE: &str = "inet minibox";

/// The table's text for the networks in use and the ports published.
pub fn table(ledger: &Ledger, networks: &[NetworkDef]) -> String {
    let mut dnat = Vec::new();
    for lease in &ledger.leases {
        for p in &lease.ports {
            let proto = proto_name(p.proto);
            let to = format!("dnat ip to {}:{}", lease.address, p.container_port);
            let rule = match p.host_ip {
                Some(ip) => format!("ip daddr {ip} {proto} dport {} {to}", p.host_port),
                None => format!("fib daddr type local {proto} dport {} {to}", p.host_port),
            };
            dnat.push(format!("\t\t{rule} comment \"{}\"\n", lease.id));
        }
    }
    let dnat = dnat.concat();
    let mut post = String::new();
    let mut forward = String::new();
    for net in networks {
        let (b, s) = (&net.bridge, net.subnet);
        post.push_str(&format!(
            "\t\tip saddr {s} oifname != \"{b}\" masquerade\n\
             \t\tct status dnat oifname \"{b}\" ip saddr 127.0.0.0/8 masquerade\n\
             \t\tct status dnat oifname \"{b}\" ip saddr {s} masquerade\n"
        ));
        forward.push_str(&format!(
            "\t\tiifname \"{b}\" accept\n\t\toifname \"{b}\" accept\n"
        ));
    }
    format!(
        "table {TABLE} {{\n\
         \tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n{dnat}\t}}\n\
         \tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n{dnat}\t}}\n\
         \tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n{post}\t}}\n\
         \tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n{forward}\t}}\n\
         }}\n"
    )
}

/// Replace the table with `text` in one transaction (or just delete it
/// with `None`). The trace shows one line: the request and its size.
pub fn apply(text: Option<&str>, what: &str) -> Result<()> {
    let exists = table_exists();
    let mut script = String::new();
    if exists {
        script.push_str(&format!("delete table {TABLE}\n"));
    }
    if let Some(text) = text {
        script.push_str(text);
    }
    if script.is_empty() {
        return Ok(());
    }
    let step = format!("nft -f - ({what})");
    let out = run_nft(&["-f", "-"], Some(&script))?;
    if out.status.success() {
        trace::note(step, Some("ok".into()));
        Ok(())
    } else {
        trace::failed(&step, nix::errno::Errno::EINVAL);
        Err(Error::Usage(format!(
            "nft refused minibox's table: {}",
            first_line(&out.stderr)
        )))
    }
}

fn table_exists() -> bool {
    run_nft(&["list", "table", "inet", "minibox"], None).is_ok_and(|o| o.status.success())
}

fn run_nft(args: &[&str], stdin: Option<&str>) -> Result<std::process::Output> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Usage(format!(
                "cannot run nft ({}): install the nftables package",
                crate::error::describe(crate::error::errno_of(&e))
            ))
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| Error::io("write to nft", e))?;
    }
    child
        .wait_with_output()
        .map_err(|e| Error::io("wait for nft", e))
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed")
        .trim()
        .to_string()
}

/// A base chain of *another* table on the forward hook whose policy is
/// drop (docker's iptables-nft FORWARD, ufw): it drops the containers'
/// traffic whatever minibox's table accepts. One line naming it and the
/// fix, or `None`.
pub fn foreign_drop() -> Option<String> {
    let out = run_nft(&["-j", "list", "chains"], None).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["nftables"].as_array()?.iter().find_map(|item| {
        let chain = &item["chain"];
        let (family, table, name) = (
            chain["family"].as_str()?,
            chain["table"].as_str()?,
            chain["name"].as_str()?,
        );
        let ours = family == "inet" && table == "minibox";
        (chain["hook"] == "forward" && chain["policy"] == "drop" && !ours).then(|| {
            format!(
                "chain {name} of table {family} {table} drops forwarded packets (policy drop), whatever minibox accepts: containers cannot reach out; allow the bridge there, e.g. `nft insert rule {family} {table} {name} iifname \"minibox*\" accept` and the same with oifname (with docker: in DOCKER-USER)"
            )
        })
    })
}

/// `net.ipv4.ip_forward`: the host must route between the bridge and the
/// outside. On while a minibox network is up; its old value comes back when
/// the last one goes.
pub const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The current value of [`IP_FORWARD`].
pub fn forwarding() -> Result<String> {
    Ok(std::fs::read_to_string(IP_FORWARD)
        .map_err(|e| Error::io(format!("read {IP_FORWARD}"), e))?
        .trim()
        .to_string())
}

pub fn write_sysctl(path: &str, value: &str) -> Result<()> {
    let result = std::fs::write(path, value).map_err(|e| crate::error::errno_of(&e));
    trace::step(format!("write({path:?}, {value:?})"), result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ipam::{Lease, Subnet};
    use crate::network::ports::parse_publish;

    #[test]
    fn the_table_names_each_published_port_and_network() {
        let net = NetworkDef {
            name: "bridge".into(),
            bridge: "minibox0".into(),
            subnet: Subnet::parse("10.123.0.0/16").unwrap(),
        };
        let ledger = Ledger {
            leases: vec![Lease {
                id: "aaaaaaaaaaaa".into(),
                name: "web".into(),
                hostname: "web".into(),
                network: "bridge".into(),
                address: "10.123.0.2".parse().unwrap(),
                ports: vec![
                    parse_publish("8080:80").unwrap(),
                    parse_publish("127.0.0.1:5353:53/udp").unwrap(),
                ],
            }],
            ..Ledger::default()
        };
        let text = table(&ledger, &[net]);
        assert!(text.contains(
            "fib daddr type local tcp dport 8080 dnat ip to 10.123.0.2:80 comment \"aaaaaaaaaaaa\""
        ));
        assert!(text.contains("ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.123.0.2:53"));
        assert!(text.contains("ip saddr 10.123.0.0/16 oifname != \"minibox0\" masquerade"));
        assert_eq!(
            text.matches("dnat ip to").count(),
            4,
            "prerouting and output"
        );
    }
}
