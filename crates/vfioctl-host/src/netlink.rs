//! VF link settings through rtnetlink on the running kernel: an `RTM_GETLINK` for the PF's
//! interface with `IFLA_EXT_MASK = RTEXT_FILTER_VF` returns `IFLA_VFINFO_LIST`, and an
//! `RTM_SETLINK` carrying `IFLA_VFINFO_LIST` changes one VF (what `ip link set DEV vf N ...`
//! sends), answered by an ACK or the errno the PF's driver returned.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo, VfInfoMac, VfInfoSpoofCheck,
    VfInfoTrust, VfInfoVlan,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use vfioctl_core::sriov::{MacAddress, VfLink, VfLinkChange};

use crate::vflinks::VfLinks;

/// The running kernel's rtnetlink.
#[derive(Debug, Default, Clone, Copy)]
pub struct Netlink;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Sends one request and returns the messages of its answer up to the ACK (or the error).
fn request(message: LinkMessage, get: bool) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let payload = if get {
        RouteNetlinkMessage::GetLink(message)
    } else {
        RouteNetlinkMessage::SetLink(message)
    };
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(payload));
    packet.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut answers = Vec::new();
    // A PF with many VFs answers with a large message: the buffer grows to take it whole.
    let mut receive = vec![0u8; 1 << 16];
    loop {
        let size = socket.recv(&mut &mut receive[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let msg: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&receive[offset..size])
                    .map_err(|e| invalid(format!("cannot parse the kernel's answer: {e}")))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(answers),
                        Some(_) => Err(e.to_io()),
                    };
                }
                NetlinkPayload::Done(_) => return Ok(answers),
                NetlinkPayload::InnerMessage(m) => answers.push(m),
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

fn named(interface: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(interface.to_owned()));
    message
}

/// One `IFLA_VF_INFO` as vfioctl reads it.
fn vf_link(info: &LinkVfInfo) -> (Option<u32>, VfLink) {
    let mut link = VfLink::default();
    let mut index = None;
    for attr in &info.0 {
        match attr {
            VfInfo::Mac(m) => {
                index = Some(m.vf_id);
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&m.mac[..6]);
                link.mac = MacAddress(mac);
            }
            VfInfo::Vlan(v) => {
                link.vlan = v.vlan_id as u16;
                link.qos = v.qos as u8;
            }
            VfInfo::Trust(t) => link.trust = Some(t.enabled),
            VfInfo::SpoofCheck(s) => link.spoofchk = Some(s.enabled),
            _ => {}
        }
    }
    (index, link)
}

impl VfLinks for Netlink {
    fn links(&self, interface: &str) -> io::Result<Vec<VfLink>> {
        let mut message = named(interface);
        message
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        let mut out: Vec<(u32, VfLink)> = Vec::new();
        for answer in request(message, true)? {
            let RouteNetlinkMessage::NewLink(link) = answer else {
                continue;
            };
            for attr in &link.attributes {
                if let LinkAttribute::VfInfoList(list) = attr {
                    for (i, info) in list.iter().enumerate() {
                        let (index, link) = vf_link(info);
                        out.push((index.unwrap_or(i as u32), link));
                    }
                }
            }
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, l)| l).collect())
    }

    fn permanent_address(&self, interface: &str) -> io::Result<Option<MacAddress>> {
        for answer in request(named(interface), true)? {
            let RouteNetlinkMessage::NewLink(link) = answer else {
                continue;
            };
            for attr in &link.attributes {
                if let LinkAttribute::PermAddress(bytes) = attr
                    && let Ok(mac) = <[u8; 6]>::try_from(bytes.as_slice())
                {
                    return Ok(Some(MacAddress(mac)));
                }
            }
        }
        Ok(None)
    }

    fn set(&self, interface: &str, index: u32, change: &VfLinkChange) -> io::Result<()> {
        let mut info = Vec::new();
        if let Some(mac) = change.mac {
            info.push(VfInfo::Mac(VfInfoMac::new(index, &mac.0)));
        }
        if let Some(vlan) = change.vlan {
            info.push(VfInfo::Vlan(VfInfoVlan::new(index, u32::from(vlan), 0)));
        }
        if let Some(trust) = change.trust {
            info.push(VfInfo::Trust(VfInfoTrust::new(index, trust)));
        }
        if let Some(on) = change.spoofchk {
            info.push(VfInfo::SpoofCheck(VfInfoSpoofCheck::new(index, on)));
        }
        if info.is_empty() {
            return Ok(());
        }
        let mut message = named(interface);
        message
            .attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(info)]));
        request(message, false).map(|_| ())
    }
}
