//! Stage 08's idea: the container's network.
//!
//! ```text
//!   host network namespace                       container's network namespace
//!  ┌──────────────────────────────────────┐     ┌──────────────────────────┐
//!  │  eth0 (the host's)                   │     │  eth0  10.123.0.2/16     │
//!  │    ▲ masquerade (nat postrouting)    │     │   default via 10.123.0.1 │
//!  │    │                                 │     └────▲─────────────────────┘
//!  │  minibox0  10.123.0.1/16  (bridge)   │          │ veth pair
//!  │    └── mbxXXXXXXXX ──────────────────┼──────────┘
//!  │  -p 8080:80 → DNAT to 10.123.0.2:80  │
//!  └──────────────────────────────────────┘
//! ```
//!
//! run allocates an address ([`ipam`]) and holds the published host ports
//! ([`ports`]) before init exists; once init's network namespace exists it
//! makes the bridge (once), a veth pair whose far end is created *inside*
//! that namespace, and the NAT rules ([`nat`]); init, inside, renames its
//! end to `eth0` and gives it the address and the default route
//! ([`configure_inside`]). Links, addresses and routes are asked of the
//! kernel over rtnetlink ([`netlink`]), one traced message each.

pub mod dns;
pub mod ipam;
pub mod nat;
pub mod netlink;
pub mod ports;

use crate::error::{Error, Result};
use crate::{layer, trace};
use ipam::{Lease, Locked, NetworkDef, Subnet};
use netlink::Netlink;
use nix::sched::CloneFlags;
use ports::{Held, PortMapping};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The network every container joins unless told otherwise.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Its bridge.
pub const DEFAULT_BRIDGE: &str = "minibox0";
/// Its subnet: away from docker's 172.17.0.0/16 and podman's 10.88.0.0/16,
/// so all three can live on one machine.
pub const DEFAULT_SUBNET: &str = "10.123.0.0/16";

pub fn default_network() -> NetworkDef {
    NetworkDef {
        name: DEFAULT_NETWORK.into(),
        bridge: DEFAULT_BRIDGE.into(),
        subnet: Subnet::parse(DEFAULT_SUBNET).unwrap_or(Subnet {
            network: Ipv4Addr::new(10, 123, 0, 0),
            prefix: 16,
        }),
    }
}

/// `--network`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A namespace of its own with only `lo`, down (stages 01–07).
    None,
    /// The host's namespace: no isolation of the network at all.
    Host,
    /// Another container's namespace (`container:NAME`).
    Container(String),
    /// A namespace of its own on a bridge network (`bridge`, or a network
    /// made with `network create`).
    Network(String),
}

/// Parse `--network`: `bridge`, `none`, `host`, `container:NAME`, a name.
pub fn parse_mode(text: &str) -> std::result::Result<Mode, String> {
    match text {
        "none" => Ok(Mode::None),
        "host" => Ok(Mode::Host),
        _ => match text.strip_prefix("container:") {
            Some("") => Err("container: needs a container name or id".into()),
            Some(name) => Ok(Mode::Container(name.to_string())),
            None => {
                validate_name(text).map_err(|e| e.to_string())?;
                Ok(Mode::Network(text.to_string()))
            }
        },
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid network name {name:?}: use lowercase letters, digits, '_' and '-'"
        )))
    }
}

impl Mode {
    /// The namespaces init is born in: without a new network namespace
    /// when it shares the host's or another container's.
    pub fn namespaces(&self, all: CloneFlags) -> CloneFlags {
        match self {
            Mode::Host | Mode::Container(_) => all.difference(CloneFlags::CLONE_NEWNET),
            Mode::None | Mode::Network(_) => all,
        }
    }
}

/// What init does inside its network namespace (a part of its config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inside {
    /// The veth end run created in our namespace, to be named `eth0`.
    pub link: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// IPv6 stays disabled unless asked for: minibox gives no v6 address,
    /// and a link-local v6 stack with no firewall of its own is surface.
    pub ipv6: bool,
}

/// A file run wrote for the container, bound over the image's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBind {
    pub host: PathBuf,
    pub container: PathBuf,
}

/// init, in its own network namespace: `lo` up, the veth end renamed to
/// `eth0` with its address and up, the default route via the bridge.
pub fn configure_inside(inside: &Inside) -> Result<()> {
    if !inside.ipv6 {
        for conf in ["all", "default"] {
            nat::write_sysctl(&format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")?;
        }
    }
    let mut nl = Netlink::open()?;
    nl.set_up("lo", None)?;
    nl.set_up(&inside.link, Some("eth0"))?;
    nl.add_address("eth0", inside.address, inside.prefix)?;
    nl.add_default_route("eth0", inside.gateway)
}

/// The host end of a container's veth pair.
pub fn host_link(id: &str) -> String {
    format!("mbx{}", &id[..id.len().min(8)])
}

/// The container's end before init renames it to `eth0`.
pub fn peer_link(id: &str) -> String {
    format!("mbp{}", &id[..id.len().min(8)])
}

/// A container's place on a network, taken before init exists: its lease
/// in the ledger and its held host ports. Dropped without `connect`, it
/// gives them back.
pub struct Plan {
    /// `--ipv6`: leave the container's IPv6 on (link-local only: the
    /// ledger hands out IPv4 addresses).
    pub(crate) ipv6: bool,
    lease: Lease,
    network: NetworkDef,
    held: Vec<Held>,
    files: Vec<FileBind>,
    released: bool,
}

/// Take an address (and the published ports) on `network` for container
/// `id`, and write its name files into its directory.
pub fn plan(
    network: &str,
    id: &str,
    name: &str,
    hostname: &str,
    ports: &[PortMapping],
) -> Result<Plan> {
    crate::process::checkpoint()?;
    let mut locked = Locked::open()?;
    let def = locked.ledger.network(network)?;
    let lease = locked.ledger.allocate(&def, id, name, hostname, ports)?;
    // Bound before the ledger is saved: a port in use elsewhere leaves no
    // lease behind.
    let held = ports::hold(ports)?;
    locked.save()?;
    let mut plan = Plan {
        ipv6: false,
        lease: lease.clone(),
        network: def,
        held,
        files: Vec::new(),
        released: false,
    };
    trace::note(
        format!("allocate an address on network {network:?}"),
        Some(format!("{}/{}", lease.address, plan.network.subnet.prefix)),
    );
    let written = write_files(&locked.ledger, &lease)
        .and_then(|files| update_peers(&locked.ledger, &lease.network, &lease.id).map(|()| files));
    // Let go of the ledger before `plan` could be dropped (its Drop takes
    // the lock again to give the lease back).
    drop(locked);
    plan.files = written?;
    Ok(plan)
}

fn write_files(ledger: &ipam::Ledger, lease: &Lease) -> Result<Vec<FileBind>> {
    let dir = layer::container_dir(&lease.id);
    let hosts = dns::hosts(lease, &ledger.on(&lease.network));
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (resolv, note) = dns::resolv_conf(&host_resolv);
    if let Some(note) = note {
        trace::note("read /etc/resolv.conf", Some(note));
    }
    let files = [
        ("hosts", hosts),
        ("resolv.conf", resolv),
        ("hostname", format!("{}\n", lease.hostname)),
    ];
    let mut binds = Vec::new();
    for (name, text) in files {
        let host = dir.join(name);
        dns::write(&host, &text)?;
        binds.push(FileBind {
            host,
            container: PathBuf::from("/etc").join(name),
        });
    }
    Ok(binds)
}

/// Rewrite the hosts files of the other containers on `network` (one
/// joined or left), in place.
fn update_peers(ledger: &ipam::Ledger, network: &str, except: &str) -> Result<()> {
    let leases = ledger.on(network);
    for peer in leases.iter().filter(|l| l.id != except) {
        let path = layer::container_dir(&peer.id).join("hosts");
        if path.exists() {
            dns::rewrite_in_place(&path, &dns::hosts(peer, &leases))?;
        }
    }
    Ok(())
}

impl Plan {
    /// What init needs to set up its side.
    pub fn inside(&self) -> Inside {
        Inside {
            link: peer_link(&self.lease.id),
            address: self.lease.address,
            prefix: self.network.subnet.prefix,
            gateway: self.network.subnet.gateway(),
            ipv6: self.ipv6,
        }
    }

    /// The name files to bind over the image's.
    pub fn files(&self) -> Vec<FileBind> {
        self.files.clone()
    }

    /// Once init's network namespace exists: the bridge (made once), the
    /// veth pair with its far end in init's namespace, the NAT rules.
    pub fn connect(mut self, init: nix::unistd::Pid) -> Result<Attachment> {
        crate::process::checkpoint()?;
        let mut attachment = Attachment {
            id: self.lease.id.clone(),
            held: std::mem::take(&mut self.held),
            // Pinned, so the veth is still there to delete when the
            // container is gone (a namespace's links die with it, but
            // asynchronously: the trace would not always show the same).
            namespace: Some(crate::namespaces::open_network_of(init.as_raw())?),
            released: false,
        };
        self.released = true; // the attachment gives it back from now on
        let mut locked = Locked::open()?;
        let mut nl = Netlink::open()?;
        ensure_bridge(&mut nl, &self.network)?;
        if locked.ledger.saved_ip_forward.is_none() {
            // Recorded before it changes: a run killed in between leaves
            // `cleanup` the value to restore.
            locked.ledger.saved_ip_forward = Some(nat::forwarding()?);
            locked.save()?;
            nat::write_sysctl(nat::IP_FORWARD, "1")?;
        }
        let (host, peer) = (host_link(&attachment.id), peer_link(&attachment.id));
        nl.add_veth(&host, &peer, init.as_raw())?;
        nl.set_master(&host, &self.network.bridge)?;
        nl.set_hairpin(&host)?;
        nl.set_up(&host, None)?;
        write_table(&locked.ledger)?;
        if let Some(warning) = nat::foreign_drop() {
            trace::note("nft -j list chains", Some(format!("warning: {warning}")));
            eprintln!("{}: warning: {warning}", crate::process::program_name());
        }
        attachment.released = false;
        Ok(attachment)
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        if !self.released {
            let _ = release(&self.lease.id);
        }
    }
}

/// A container on a network; dropping it takes the container off.
pub struct Attachment {
    id: String,
    /// The host ports, bound until the container is gone.
    #[allow(dead_code)]
    held: Vec<Held>,
    namespace: Option<std::os::fd::OwnedFd>,
    released: bool,
}

impl Attachment {
    /// Take the container off its network: its veth, rules, lease.
    pub fn detach(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        self.held.clear();
        let released = release(&self.id);
        self.namespace = None;
        released
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

fn ensure_bridge(nl: &mut Netlink, net: &NetworkDef) -> Result<()> {
    if netlink::index_if_exists(&net.bridge).is_some() {
        return Ok(());
    }
    nl.add_bridge(&net.bridge)?;
    nl.add_address(&net.bridge, net.subnet.gateway(), net.subnet.prefix)?;
    // Lets packets from 127.0.0.1, DNAT'ed to a container, leave through
    // the bridge instead of being dropped as martians.
    nat::write_sysctl(
        &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
        "1",
    )?;
    nl.set_up(&net.bridge, None)
}

/// The networks that have containers, for the table.
fn in_use(ledger: &ipam::Ledger) -> Vec<NetworkDef> {
    ledger
        .all_networks()
        .into_iter()
        .filter(|n| ledger.leases.iter().any(|l| l.network == n.name))
        .collect()
}

fn write_table(ledger: &ipam::Ledger) -> Result<()> {
    let networks = in_use(ledger);
    let ports: usize = ledger.leases.iter().map(|l| l.ports.len()).sum();
    if networks.is_empty() {
        return nat::apply(None, "delete table inet minibox");
    }
    nat::apply(
        Some(&nat::table(ledger, &networks)),
        &format!(
            "table inet minibox: {}, {}",
            trace::count(networks.len(), "network"),
            trace::count(ports, "published port")
        ),
    )
}

/// Give back what container `id` held: its lease, its veth (if its
/// namespace has not taken it away already), its rules, its name in the
/// others' hosts files.
pub fn release(id: &str) -> Result<()> {
    let mut locked = Locked::open()?;
    let lease = locked.ledger.leases.iter().find(|l| l.id == id).cloned();
    if !locked.ledger.release(id) {
        return Ok(());
    }
    let host = host_link(id);
    if netlink::index_if_exists(&host).is_some() {
        Netlink::open()?.delete_link(&host)?;
    }
    locked.save()?;
    write_table(&locked.ledger)?;
    if let Some(lease) = lease {
        update_peers(&locked.ledger, &lease.network, id)?;
    }
    Ok(())
}

/// `cleanup`: release the leases of containers that are gone, remove
/// bridges no container uses, the table if nothing uses it, and give
/// `ip_forward` back its old value when no network is left.
pub fn cleanup(is_alive: impl Fn(&str) -> bool) -> Result<usize> {
    let dead: Vec<String> = Locked::open()?
        .ledger
        .leases
        .iter()
        .filter(|l| !is_alive(&l.id))
        .map(|l| l.id.clone())
        .collect();
    for id in &dead {
        release(id)?;
    }
    let mut locked = Locked::open()?;
    let mut nl = Netlink::open()?;
    for net in locked.ledger.all_networks() {
        let used = locked.ledger.leases.iter().any(|l| l.network == net.name);
        if !used && netlink::index_if_exists(&net.bridge).is_some() {
            nl.delete_link(&net.bridge)?;
        }
    }
    if locked.ledger.leases.is_empty() {
        write_table(&locked.ledger)?;
        if let Some(before) = locked.ledger.saved_ip_forward.take() {
            if before != "1" {
                nat::write_sysctl(nat::IP_FORWARD, &before)?;
            }
            locked.save()?;
        }
    }
    Ok(dead.len())
}

/// `network create NAME --subnet CIDR`.
pub fn create(name: &str, subnet: &str) -> Result<NetworkDef> {
    validate_name(name)?;
    let subnet = Subnet::parse(subnet).map_err(Error::Usage)?;
    let mut locked = Locked::open()?;
    let all = locked.ledger.all_networks();
    if all.iter().any(|n| n.name == name) {
        return Err(Error::Usage(format!("network {name:?} exists")));
    }
    if let Some(other) = all.iter().find(|n| n.subnet.overlaps(&subnet)) {
        return Err(Error::Usage(format!(
            "subnet {subnet} overlaps network {} ({})",
            other.name, other.subnet
        )));
    }
    let bridge = format!("mbx-{}", &name[..name.len().min(11)]);
    if all.iter().any(|n| n.bridge == bridge) {
        return Err(Error::Usage(format!(
            "network {name:?} would use bridge {bridge}, which another network has: pick a name that differs in its first 11 characters"
        )));
    }
    let def = NetworkDef {
        name: name.into(),
        bridge,
        subnet,
    };
    locked.ledger.networks.push(def.clone());
    locked.save()?;
    Ok(def)
}

/// `network rm NAME`: refused while a container uses it.
pub fn remove(name: &str) -> Result<()> {
    if name == DEFAULT_NETWORK {
        return Err(Error::Usage(format!(
            "the default network {DEFAULT_NETWORK:?} cannot be removed"
        )));
    }
    let mut locked = Locked::open()?;
    let def = locked.ledger.network(name)?;
    if let Some(user) = locked.ledger.leases.iter().find(|l| l.network == name) {
        return Err(Error::Usage(format!(
            "network {name:?} is in use by container {}",
            user.name
        )));
    }
    if netlink::index_if_exists(&def.bridge).is_some() {
        Netlink::open()?.delete_link(&def.bridge)?;
    }
    locked.ledger.networks.retain(|n| n.name != name);
    locked.save()
}

/// `network ls`.
pub fn list() -> Result<String> {
    let locked = Locked::open()?;
    let mut out = format!(
        "{:<20} {:<16} {:<18} {}\n",
        "NAME", "BRIDGE", "SUBNET", "CONTAINERS"
    );
    for net in locked.ledger.all_networks() {
        let count = locked
            .ledger
            .leases
            .iter()
            .filter(|l| l.network == net.name)
            .count();
        out.push_str(&format!(
            "{:<20} {:<16} {:<18} {count}\n",
            net.name,
            net.bridge,
            net.subnet.to_string()
        ));
    }
    Ok(out)
}

/// The lease of container `id`, if it has one (`ps`, `port`).
pub fn lease_of(id: &str) -> Option<Lease> {
    Locked::open()
        .ok()?
        .ledger
        .leases
        .into_iter()
        .find(|l| l.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_parse() {
        assert_eq!(parse_mode("none"), Ok(Mode::None));
        assert_eq!(parse_mode("host"), Ok(Mode::Host));
        assert_eq!(parse_mode("bridge"), Ok(Mode::Network("bridge".into())));
        assert_eq!(
            parse_mode("container:web"),
            Ok(Mode::Container("web".into()))
        );
        assert!(parse_mode("container:").is_err());
        assert!(parse_mode("No Such").is_err());
        let all = crate::namespaces::CONTAINER;
        assert!(!Mode::Host
            .namespaces(all)
            .contains(CloneFlags::CLONE_NEWNET));
        assert!(Mode::None
            .namespaces(all)
            .contains(CloneFlags::CLONE_NEWNET));
    }
}

/// Stage 08's verbs: `network create|ls|rm` and `port`.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// Make, list and remove networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// List a container's published ports
    Port { container: String },
}

impl Verb {
    pub fn execute(self) -> Result<crate::process::Exit> {
        match self {
            Verb::Network(command) => command.execute()?,
            Verb::Port { container } => print!("{}", port(&container).map_err(Error::failed)?),
        }
        Ok(crate::process::Exit::Code(0))
    }
}

/// `network create|ls|rm`.
#[derive(clap::Subcommand, Debug)]
pub enum NetworkCommand {
    /// Make a bridge network with its own subnet
    Create {
        name: String,
        /// The network's subnet, e.g. 10.124.0.0/24
        #[arg(long, value_name = "CIDR")]
        subnet: String,
    },
    /// List networks
    Ls,
    /// Remove networks no container uses
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

impl NetworkCommand {
    /// docker's exit codes: a bad name or subnet is a command line it
    /// rejects before acting (125); a network that exists, overlaps, is
    /// unknown or in use is an action that failed (1).
    pub fn execute(self) -> Result<()> {
        match self {
            NetworkCommand::Create { name, subnet } => {
                validate_name(&name)?;
                Subnet::parse(&subnet).map_err(Error::Usage)?;
                let def = create(&name, &subnet).map_err(Error::failed)?;
                println!("{} ({}, bridge {})", def.name, def.subnet, def.bridge);
            }
            NetworkCommand::Ls => print!("{}", list()?),
            NetworkCommand::Rm { names } => {
                for name in names {
                    remove(&name).map_err(Error::failed)?;
                    println!("{name}");
                }
            }
        }
        Ok(())
    }
}

/// `port CONTAINER`: its published ports, docker's way (`80/tcp -> 0.0.0.0:8080`).
pub fn port(container: &str) -> Result<String> {
    let record = crate::container::state::find(container)?;
    let lease = lease_of(&record.id);
    Ok(lease
        .map(|l| {
            l.ports
                .iter()
                .map(|p| {
                    format!(
                        "{}/{} -> {}:{}\n",
                        p.container_port,
                        ipam::proto_name(p.proto),
                        p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                        p.host_port
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// What `rm` and `cleanup` undo of a container's network.
pub struct Teardown;

impl crate::container::Extension for Teardown {
    fn remove(&self, id: &str) -> Result<()> {
        release(id)
    }

    fn cleanup(&self, alive: &dyn Fn(&str) -> bool) -> Result<String> {
        let released = cleanup(alive)?;
        Ok(format!("{released} network lease(s)"))
    }

    fn ps_header(&self) -> Option<&'static str> {
        Some("NETWORK")
    }

    /// The address, and the published ports docker's way.
    fn ps_cell(&self, id: &str) -> String {
        lease_of(id).map_or("-".into(), |l| {
            let mut cell = l.address.to_string();
            for p in &l.ports {
                cell.push_str(&format!(
                    " {}:{}->{}/{}",
                    p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    p.host_port,
                    p.container_port,
                    ipam::proto_name(p.proto)
                ));
            }
            cell
        })
    }
}
