//! Network address classification shared by everything that connects out on someone else's
//! behalf (agents' outbound HTTP, push-notification webhooks): a destination that is not a
//! public address may reach the platform's own network.

use std::net::IpAddr;

/// Whether `ip` is a public unicast address. Everything else — loopback, private (RFC 1918,
/// unique local), link-local (including cloud metadata at 169.254.169.254), CGNAT, multicast,
/// unspecified, documentation and benchmarking ranges — is not.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
                || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol 192.0.0.0/24
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // Forms that carry an IPv4 address, which decides: NAT64 (64:ff9b::/96 and the
            // local-use 64:ff9b:1::/48), IPv4-compatible (::/96) and 6to4 (2002::/16).
            let embedded = |high: u16, low: u16| {
                std::net::Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
            };
            if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                return false; // local-use NAT64 translates into the local network
            }
            if (s[0] == 0x64 && s[1] == 0xff9b) || (s[0..6] == [0; 6] && !v6.is_loopback()) {
                return is_public(IpAddr::V4(embedded(s[6], s[7])));
            }
            if s[0] == 0x2002 {
                return is_public(IpAddr::V4(embedded(s[1], s[2])));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_is_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::a00:1",
            "::10.0.0.1",
            "2002:a00:1::1",
            "192.0.0.8",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = private.parse().unwrap_or_else(|e| panic!("{private}: {e}"));
            assert!(!is_public(ip), "{private}");
        }
        for public in [
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = public.parse().unwrap_or_else(|e| panic!("{public}: {e}"));
            assert!(is_public(ip), "{public}");
        }
    }
}
