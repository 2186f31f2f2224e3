//! A small rtnetlink client: the handful of requests a container network
//! needs, each one message on an `AF_NETLINK` socket, answered by an ack.
//!
//! `ip link add …` and friends are thin wrappers over these same messages.
//! Writing them out shows what the kernel is really asked: a header
//! (`nlmsghdr`), a fixed part (`ifinfomsg`, `ifaddrmsg`, `rtmsg`), then
//! attributes (`rtattr`: length, type, value, padded to 4 bytes), nested
//! where a value is itself a list of attributes. Synchronous, no threads:
//! the process that later forks init must stay single-threaded.

use crate::error::{Error, Result};
use crate::trace;
use nix::errno::Errno;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>
const NETLINK_ROUTE: i32 = 0;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_BRPORT_MODE: u16 = 4; // hairpin
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const NLA_F_NESTED: u16 = 0x8000;
const IFF_UP: u32 = 0x1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// A netlink socket bound to the kernel's rtnetlink.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// An attribute list being built.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
        self
    }

    fn put_str(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.put(kind, &bytes)
    }

    fn put_u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.put(kind, &value.to_ne_bytes())
    }

    fn nest(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.0)
    }
}

/// `struct ifinfomsg`: family, type, index, flags, change.
fn ifinfomsg(family: u8, index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut m = vec![family, 0, 0, 0];
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&change.to_ne_bytes());
    m
}

impl Netlink {
    /// `socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE)`, in the
    /// calling process's network namespace.
    pub fn open() -> Result<Netlink> {
        // SAFETY: socket(2) takes no memory arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        let fd = Errno::result(fd).map_err(|errno| Error::Sys {
            step: "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)".into(),
            errno,
        })?;
        // SAFETY: the kernel just gave us this fd.
        Ok(Netlink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            seq: 0,
        })
    }

    /// Send one request and wait for its ack: the kernel's errno, or 0.
    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> nix::Result<()> {
        self.seq += 1;
        let len = 16 + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        msg.extend_from_slice(body);
        // SAFETY: sending our own buffer to the kernel (sockaddr: the
        // kernel, pid 0).
        let sent = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        Errno::result(sent)?;
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: receiving into our own buffer of the given length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let n = match Errno::result(n) {
                Err(Errno::EINTR) => continue,
                other => other? as usize,
            };
            let mut at = 0;
            while at + 16 <= n {
                let mlen =
                    u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
                let mtype = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                let mseq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap_or([0; 4]));
                if mlen < 16 {
                    return Err(Errno::EPROTO);
                }
                if mtype == NLMSG_ERROR && mseq == self.seq && at + 20 <= n {
                    let code =
                        i32::from_ne_bytes(buf[at + 16..at + 20].try_into().unwrap_or([0; 4]));
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(Errno::from_raw(-code))
                    };
                }
                at += (mlen + 3) & !3;
            }
        }
    }

    fn traced(&mut self, step: String, kind: u16, flags: u16, body: &[u8]) -> Result<()> {
        let result = self.request(kind, flags, body);
        trace::step(step, result)
    }

    /// `RTM_NEWLINK` kind bridge: `ip link add NAME type bridge`.
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        let mut info = Attrs::default();
        info.put_str(IFLA_INFO_KIND, "bridge");
        let mut attrs = Attrs::default();
        attrs.put_str(IFLA_IFNAME, name).nest(IFLA_LINKINFO, info);
        let body = [ifinfomsg(0, 0, 0, 0), attrs.0].concat();
        self.traced(
            format!("RTM_NEWLINK {{name: {name:?}, kind: bridge}}"),
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
        )
    }

    /// `RTM_NEWLINK` kind veth: a pair, `name` here and `peer` in the
    /// network namespace of process `peer_pid` (so it never exists in ours).
    pub fn add_veth(&mut self, name: &str, peer: &str, peer_pid: i32) -> Result<()> {
        let mut peer_attrs = Attrs::default();
        peer_attrs
            .put_str(IFLA_IFNAME, peer)
            .put_u32(IFLA_NET_NS_PID, peer_pid as u32);
        let peer_body = [ifinfomsg(0, 0, 0, 0), peer_attrs.0].concat();
        let mut data = Attrs::default();
        data.put(VETH_INFO_PEER, &peer_body);
        let mut info = Attrs::default();
        info.put_str(IFLA_INFO_KIND, "veth")
            .nest(IFLA_INFO_DATA, data);
        let mut attrs = Attrs::default();
        attrs.put_str(IFLA_IFNAME, name).nest(IFLA_LINKINFO, info);
        let body = [ifinfomsg(0, 0, 0, 0), attrs.0].concat();
        self.traced(
            format!(
                "RTM_NEWLINK {{name: {name:?}, kind: veth, peer: {peer:?} in the netns of pid {peer_pid}}}"
            ),
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
        )
    }

    /// `RTM_NEWLINK` on an existing link: set its master (a bridge).
    pub fn set_master(&mut self, name: &str, master: &str) -> Result<()> {
        let (index, master_index) = (index_of(name)?, index_of(master)?);
        let mut attrs = Attrs::default();
        attrs.put_u32(IFLA_MASTER, master_index as u32);
        let body = [ifinfomsg(0, index, 0, 0), attrs.0].concat();
        self.traced(
            format!("RTM_NEWLINK {{index: {index} ({name}), master: {master_index} ({master})}}"),
            RTM_NEWLINK,
            0,
            &body,
        )
    }

    /// Hairpin mode on a bridge port: a packet may leave by the port it
    /// came in on, so a container reaches its own published port.
    pub fn set_hairpin(&mut self, name: &str) -> Result<()> {
        let index = index_of(name)?;
        let mut port = Attrs::default();
        port.put(IFLA_BRPORT_MODE, &[1]);
        let mut attrs = Attrs::default();
        attrs.nest(IFLA_PROTINFO, port);
        let body = [ifinfomsg(libc::AF_BRIDGE as u8, index, 0, 0), attrs.0].concat();
        self.traced(
            format!("RTM_SETLINK {{family: AF_BRIDGE, index: {index} ({name}), hairpin: on}}"),
            19, // RTM_SETLINK
            0,
            &body,
        )
    }

    /// Bring a link up (`ip link set NAME up`), renaming it on the way if
    /// `new_name` is given (a link can be renamed only while it is down).
    pub fn set_up(&mut self, name: &str, new_name: Option<&str>) -> Result<()> {
        let index = index_of(name)?;
        let mut attrs = Attrs::default();
        if let Some(new_name) = new_name {
            attrs.put_str(IFLA_IFNAME, new_name);
            let body = [ifinfomsg(0, index, 0, 0), attrs.0].concat();
            self.traced(
                format!("RTM_NEWLINK {{index: {index} ({name}), name: {new_name:?}}}"),
                RTM_NEWLINK,
                0,
                &body,
            )?;
        }
        let body = ifinfomsg(0, index, IFF_UP, IFF_UP);
        self.traced(
            format!(
                "RTM_NEWLINK {{index: {index} ({}), flags: IFF_UP}}",
                new_name.unwrap_or(name)
            ),
            RTM_NEWLINK,
            0,
            &body,
        )
    }

    /// `RTM_DELLINK`: `ip link del NAME` (for a veth, both ends go).
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let index = index_of(name)?;
        let body = ifinfomsg(0, index, 0, 0);
        self.traced(
            format!("RTM_DELLINK {{index: {index} ({name})}}"),
            RTM_DELLINK,
            0,
            &body,
        )
    }

    /// `RTM_NEWADDR`: `ip addr add ADDR/PREFIX dev NAME`.
    pub fn add_address(&mut self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let index = index_of(name)?;
        let mut body = vec![libc::AF_INET as u8, prefix, 0, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&(index as u32).to_ne_bytes());
        let mut attrs = Attrs::default();
        attrs
            .put(IFA_LOCAL, &addr.octets())
            .put(IFA_ADDRESS, &addr.octets());
        body.extend_from_slice(&attrs.0);
        self.traced(
            format!("RTM_NEWADDR {{index: {index} ({name}), address: {addr}/{prefix}}}"),
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
        )
    }

    /// `RTM_NEWROUTE`: `ip route add default via GATEWAY dev NAME`.
    pub fn add_default_route(&mut self, name: &str, gateway: Ipv4Addr) -> Result<()> {
        let index = index_of(name)?;
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
        // scope, type, flags (u32).
        let mut body = vec![
            libc::AF_INET as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ];
        body.extend_from_slice(&0u32.to_ne_bytes());
        let mut attrs = Attrs::default();
        attrs
            .put(RTA_GATEWAY, &gateway.octets())
            .put_u32(RTA_OIF, index as u32);
        body.extend_from_slice(&attrs.0);
        self.traced(
            format!("RTM_NEWROUTE {{default via {gateway} dev {name}}}"),
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
        )
    }
}

/// `if_nametoindex`: a link's index in this network namespace.
pub fn index_of(name: &str) -> Result<i32> {
    index_if_exists(name).ok_or_else(|| Error::Sys {
        step: format!("if_nametoindex({name:?})"),
        errno: Errno::ENODEV,
    })
}

/// The link's index, or `None` if there is no such link here.
pub fn index_if_exists(name: &str) -> Option<i32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index as i32)
}
