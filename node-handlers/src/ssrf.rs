//! The guard against requests to private addresses (SSRF). Names are
//! checked as they are resolved, so the address checked is the address
//! connected to.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::Error;

/// Hosts and networks allowed although private.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

/// A request refused by the guard (found in an error's source chain).
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} is a private, loopback or link-local address; list it in FLOWMESH_HTTP_ALLOW_HOSTS to allow it"
)]
pub struct Denied(pub String);

const BLOCKED_NAMES: [&str; 2] = ["metadata.google.internal", "metadata"];

impl AllowList {
    pub fn parse(entries: &[String]) -> Result<Self, Error> {
        let mut list = AllowList::default();
        for entry in entries {
            if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
            {
                list.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(Error::Config(format!(
                    "allow-list entry {entry:?} is neither a host, an IP nor a CIDR"
                )));
            }
        }
        Ok(list)
    }

    pub fn host_allowed(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Checks a host as written in a URL (a name or an IP literal).
    pub fn check_host(&self, host: &str) -> Result<(), Denied> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if self.host_allowed(bare) {
            return Ok(());
        }
        if BLOCKED_NAMES.contains(&bare.to_ascii_lowercase().as_str()) {
            return Err(Denied(bare.to_owned()));
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) if !self.ip_allowed(ip) => Err(Denied(bare.to_owned())),
            _ => Ok(()),
        }
    }
}

fn is_public_v4(ip: std::net::Ipv4Addr) -> bool {
    let cgnat: IpNet = IpNet::V4(
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(100, 64, 0, 0), 10).unwrap_or_default(),
    );
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.octets()[0] == 0
        || cgnat.contains(&IpAddr::V4(ip)))
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
            {
                return false;
            }
            // An address that carries an IPv4 address reaches that address
            // through a translator or tunnel: it is as public as that one.
            embedded_v4(v6).iter().all(|&v4| is_public_v4(v4))
        }
    }
}

/// The IPv4 addresses an IPv6 address carries: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), SIIT (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::/96`
/// and the local-use `64:ff9b:1::/48`, RFC 6052 layout), 6to4 (`2002::/16`)
/// and Teredo (`2001::/32`: the server and the obfuscated client).
fn embedded_v4(v6: std::net::Ipv6Addr) -> Vec<std::net::Ipv4Addr> {
    use std::net::Ipv4Addr;
    let o = v6.octets();
    let s = v6.segments();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let mut found = Vec::new();
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        found.push(last);
    }
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        found.push(last);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        found.push(last);
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        found.push(Ipv4Addr::new(o[6], o[7], o[9], o[10]));
    }
    if s[0] == 0x2002 {
        found.push(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    if s[..2] == [0x2001, 0] {
        found.push(Ipv4Addr::new(o[4], o[5], o[6], o[7]));
        found.push(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    found
}

/// An HTTP client builder whose connections go only where `allow` permits
/// (never through a proxy, which would resolve names around the guard).
pub fn client_builder(allow: &Arc<AllowList>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            allow: allow.clone(),
        }))
}

/// A resolver that drops addresses the allow-list does not permit.
pub struct GuardedResolver {
    pub allow: Arc<AllowList>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            if BLOCKED_NAMES.contains(&host.to_ascii_lowercase().as_str())
                && !allow.host_allowed(&host)
            {
                return Err(Box::new(Denied(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let host_ok = allow.host_allowed(&host);
            let permitted: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| host_ok || allow.ip_allowed(a.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(Denied(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        let list = AllowList::default();
        for host in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "[::1]",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "metadata.google.internal",
            // IPv6 forms that carry a private IPv4 address.
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:169.254.169.254",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.1.2.3",
            "64:ff9b:1:7f00:0:100::",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:7f00:1::",
            "2001:0:808:808::80ff:fffe",
        ] {
            assert!(list.check_host(host).is_err(), "{host}");
        }
        for host in [
            "8.8.8.8",
            "2606:4700::1111",
            "example.com",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "::ffff:0:8.8.8.8",
        ] {
            assert!(list.check_host(host).is_ok(), "{host}");
        }
    }

    #[test]
    fn the_allow_list_admits_hosts_ips_and_networks() {
        let list = AllowList::parse(&[
            "127.0.0.1".into(),
            "10.0.0.0/8".into(),
            "internal.test".into(),
        ])
        .unwrap();
        assert!(list.check_host("127.0.0.1").is_ok());
        assert!(list.check_host("10.9.9.9").is_ok());
        assert!(list.check_host("192.168.0.1").is_err());
        assert!(list.host_allowed("INTERNAL.test"));
        assert!(matches!(
            AllowList::parse(&["not a host!".into()]),
            Err(Error::Config(_))
        ));
    }
}
