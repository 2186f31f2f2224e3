//! Address management: networks, their subnets, and which container holds
//! which address and which published host ports.
//!
//! Everything is one record, `$MINIBOX_ROOT/network/state.json` (0600),
//! changed only under `network/lock`: two runs starting at once each read,
//! allocate and write while holding the lock, so they can never get the
//! same address or host port.

use super::ports::{PortMapping, Proto};
use crate::error::{Error, Result};
use crate::lock::FileLock;
use crate::paths;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// An IPv4 subnet, `10.123.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> std::result::Result<Subnet, String> {
        let bad = || format!("{text:?} is not a subnet like 10.123.0.0/16");
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("{text}: use a prefix from /8 to /30"));
        }
        let subnet = Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        };
        if subnet.network != addr {
            return Err(format!(
                "{text} has host bits set: did you mean {}?",
                subnet
            ));
        }
        Ok(subnet)
    }

    /// The first host address: the bridge's, the containers' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.network)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// Addresses a container may get: all but network, gateway, broadcast.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let last = u32::from(self.broadcast());
        (first..last).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

/// A network: a bridge and its subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
}

/// What one container holds on a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The container's id.
    pub id: String,
    /// Its name, for the other containers' `/etc/hosts`.
    pub name: String,
    pub hostname: String,
    pub network: String,
    pub address: Ipv4Addr,
    pub ports: Vec<PortMapping>,
}

/// The whole record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// User-made networks (`network create`); the default one is implicit.
    pub networks: Vec<NetworkDef>,
    pub leases: Vec<Lease>,
    /// `net.ipv4.ip_forward` before minibox turned it on (per network
    /// namespace of the host: restored when the last network goes).
    pub saved_ip_forward: Option<String>,
}

fn dir() -> Result<PathBuf> {
    paths::state_dir("network")
}

/// The ledger, locked for as long as the guard lives.
pub struct Locked {
    _lock: FileLock,
    // Other runs wait for the ledger: `--trace step` must not pause on it.
    _no_pause: crate::trace::NoPause,
    pub ledger: Ledger,
}

impl Locked {
    pub fn open() -> Result<Locked> {
        let dir = dir()?;
        let lock = FileLock::acquire(&dir.join("lock"), true)?
            .ok_or_else(|| Error::Protocol("a blocking lock returned without the lock".into()))?;
        let path = dir.join("state.json");
        let ledger = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::StateDamaged {
                id: "network".into(),
                why: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        Ok(Locked {
            _lock: lock,
            _no_pause: crate::trace::NoPause::new(),
            ledger,
        })
    }

    pub fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.ledger)
            .map_err(|e| Error::Protocol(format!("encode the network ledger: {e}")))?;
        paths::write_atomic(&dir()?.join("state.json"), &json, false)
    }
}

impl Ledger {
    /// The network called `name` (the default `bridge` is always there).
    pub fn network(&self, name: &str) -> Result<NetworkDef> {
        if name == super::DEFAULT_NETWORK {
            return Ok(super::default_network());
        }
        self.networks
            .iter()
            .find(|n| n.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no network {name:?}: make it with `network create {name} --subnet CIDR`, or see `network ls`"
                ))
            })
    }

    /// Every network: the default one first.
    pub fn all_networks(&self) -> Vec<NetworkDef> {
        let mut all = vec![super::default_network()];
        all.extend(self.networks.iter().cloned());
        all
    }

    /// Give container `id` the lowest free address of `network` and its
    /// published ports. Refuses a host port another container holds.
    pub fn allocate(
        &mut self,
        network: &NetworkDef,
        id: &str,
        name: &str,
        hostname: &str,
        ports: &[PortMapping],
    ) -> Result<Lease> {
        for wanted in ports {
            if let Some(holder) = self.leases.iter().find(|l| {
                l.ports.iter().any(|p| {
                    p.proto == wanted.proto && p.host_port == wanted.host_port && p.clashes(wanted)
                })
            }) {
                return Err(Error::Usage(format!(
                    "host port {}/{} is already published by container {}",
                    wanted.host_port,
                    proto_name(wanted.proto),
                    holder.name
                )));
            }
        }
        let taken: Vec<Ipv4Addr> = self
            .leases
            .iter()
            .filter(|l| l.network == network.name)
            .map(|l| l.address)
            .collect();
        let address = network
            .subnet
            .hosts()
            .find(|a| !taken.contains(a))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "network {} ({}) has no free address left: remove a container or make a larger network",
                    network.name, network.subnet
                ))
            })?;
        let lease = Lease {
            id: id.to_string(),
            name: name.to_string(),
            hostname: hostname.to_string(),
            network: network.name.clone(),
            address,
            ports: ports.to_vec(),
        };
        self.leases.push(lease.clone());
        Ok(lease)
    }

    pub fn release(&mut self, id: &str) -> bool {
        let before = self.leases.len();
        self.leases.retain(|l| l.id != id);
        before != self.leases.len()
    }

    /// The leases on `network`.
    pub fn on(&self, network: &str) -> Vec<Lease> {
        self.leases
            .iter()
            .filter(|l| l.network == network)
            .cloned()
            .collect()
    }
}

pub fn proto_name(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(subnet: &str) -> NetworkDef {
        NetworkDef {
            name: "n".into(),
            bridge: "mbx-n".into(),
            subnet: Subnet::parse(subnet).unwrap(),
        }
    }

    #[test]
    fn subnets_parse_and_their_mistakes_are_named() {
        let s = Subnet::parse("10.123.0.0/16").unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 123, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 123, 255, 255));
        assert!(s.contains(Ipv4Addr::new(10, 123, 9, 9)));
        assert!(!s.contains(Ipv4Addr::new(10, 124, 0, 1)));
        assert!(s.overlaps(&Subnet::parse("10.123.4.0/24").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.124.0.0/16").unwrap()));
        assert!(Subnet::parse("10.123.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(Subnet::parse("nope").is_err());
        assert!(Subnet::parse("10.0.0.0/31").is_err());
    }

    #[test]
    fn addresses_are_handed_out_lowest_first_and_run_out() {
        let network = net("192.0.2.0/30"); // .2 is its only container address
        let mut ledger = Ledger::default();
        let lease = ledger
            .allocate(&network, "aaaaaaaaaaaa", "a", "a", &[])
            .unwrap();
        assert_eq!(lease.address, Ipv4Addr::new(192, 0, 2, 2));
        let err = ledger
            .allocate(&network, "bbbbbbbbbbbb", "b", "b", &[])
            .unwrap_err();
        assert!(err.to_string().contains("no free address"), "{err}");
        assert!(ledger.release("aaaaaaaaaaaa"));
        assert!(ledger
            .allocate(&network, "bbbbbbbbbbbb", "b", "b", &[])
            .is_ok());
    }

    #[test]
    fn a_host_port_is_published_once() {
        let network = net("192.0.2.0/24");
        let mut ledger = Ledger::default();
        let port = super::super::ports::parse_publish("8080:80").unwrap();
        ledger
            .allocate(&network, "aaaaaaaaaaaa", "web", "web", &[port])
            .unwrap();
        let err = ledger
            .allocate(&network, "bbbbbbbbbbbb", "two", "two", &[port])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("already published by container web"),
            "{err}"
        );
        let udp = super::super::ports::parse_publish("8080:80/udp").unwrap();
        assert!(ledger
            .allocate(&network, "cccccccccccc", "u", "u", &[udp])
            .is_ok());
    }
}
