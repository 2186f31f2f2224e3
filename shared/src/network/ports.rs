//! Published ports: `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`.
//!
//! A DNAT rule sends the host's traffic for a port to the container, but a
//! rule holds nothing: a second container, or a host service, could claim
//! the same port. So `run` (or the monitor of `run -d`) also *binds* each
//! published host port for the container's life — the ledger keeps minibox's
//! own containers apart, the held socket keeps everyone else out.

use crate::error::{Error, Result};
use crate::trace;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// Only traffic to this host address (`None`: any of the host's).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// Would both mappings receive the same packets?
    pub fn clashes(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port,
            self.container_port,
            super::ipam::proto_name(self.proto)
        )
    }
}

/// Parse `-p`: `8080:80`, `127.0.0.1:8080:80/udp`.
pub fn parse_publish(text: &str) -> std::result::Result<PortMapping, String> {
    let (spec, proto) = match text.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some((_, other)) => return Err(format!("unknown protocol {other:?}: use tcp or udp")),
        None => (text, Proto::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [host, container] => (None, *host, *container),
        [ip, host, container] => (
            Some(
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| format!("{ip:?} is not an IPv4 address"))?,
            ),
            *host,
            *container,
        ),
        _ => return Err("expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]".into()),
    };
    let port = |p: &str, what: &str| -> std::result::Result<u16, String> {
        match p.parse::<u32>() {
            Ok(n @ 1..=65535) => Ok(n as u16),
            _ => Err(format!("{what} port {p:?} is not a port number (1-65535)")),
        }
    };
    Ok(PortMapping {
        host_ip,
        host_port: port(host, "host")?,
        container_port: port(container, "container")?,
        proto,
    })
}

/// A host port bound for a container's life (close-on-exec: std's sockets
/// are, so no container inherits it).
pub enum Held {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Bind every published host port now: a port some other process uses is
/// a one-line error before anything else is made.
pub fn hold(ports: &[PortMapping]) -> Result<Vec<Held>> {
    let mut held = Vec::new();
    for p in ports {
        let addr = SocketAddrV4::new(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port);
        let step = format!("bind({addr}/{})", super::ipam::proto_name(p.proto));
        let bound = match p.proto {
            Proto::Tcp => TcpListener::bind(addr).map(Held::Tcp),
            Proto::Udp => UdpSocket::bind(addr).map(Held::Udp),
        };
        match bound {
            Ok(socket) => {
                trace::note(step, Some("held for the container's life".into()));
                held.push(socket);
            }
            Err(e) => {
                trace::failed(&step, crate::error::errno_of(&e));
                return Err(Error::Usage(format!(
                    "host port {addr}/{} is in use on this machine: pick another with -p",
                    super::ipam::proto_name(p.proto)
                )));
            }
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp"),
            Ok(PortMapping {
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                container_port: 80,
                proto: Proto::Udp
            })
        );
        assert_eq!(parse_publish("8080:80").unwrap().proto, Proto::Tcp);
        for (bad, why) in [
            ("99999:80", "not a port number"),
            ("abc", "expected"),
            ("80:0", "not a port number"),
            ("1.2.3:80:80", "not an IPv4"),
            ("80:80/sctp", "unknown protocol"),
        ] {
            assert!(parse_publish(bad).unwrap_err().contains(why), "{bad}");
        }
    }

    #[test]
    fn only_overlapping_addresses_clash() {
        let any = parse_publish("8080:80").unwrap();
        let local = parse_publish("127.0.0.1:8080:80").unwrap();
        let other = parse_publish("127.0.0.2:8080:80").unwrap();
        assert!(any.clashes(&local) && local.clashes(&any));
        assert!(!local.clashes(&other));
        assert!(!any.clashes(&parse_publish("8080:80/udp").unwrap()));
    }
}
