//! What a per-address limit counts as one source.

use std::net::IpAddr;

/// The source a per-address limit counts `ip` as: an IPv4 address (also
/// when it arrives mapped into IPv6), or an IPv6 address's /64, which one
/// subscriber usually holds whole and can draw new addresses from at will.
pub fn source_block(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_64_is_one_source_and_a_mapped_ipv4_its_address() {
        let block = |s: &str| source_block(s.parse().unwrap());
        assert_eq!(block("2001:db8::1"), block("2001:db8::ffff:2"));
        assert_ne!(block("2001:db8::1"), block("2001:db8:0:1::1"));
        assert_eq!(block("::ffff:192.0.2.7"), block("192.0.2.7"));
        assert_ne!(block("192.0.2.7"), block("192.0.2.8"));
    }
}
