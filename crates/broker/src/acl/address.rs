//! Remote-address patterns of `plain_acl.yml` (`globalWhiteRemoteAddresses`, an account's
//! `whiteRemoteAddress`), read as Java's `RemoteAddressStrategyFactory` reads them:
//!
//! - blank: matches nothing;
//! - `*`, `*.*.*.*`, `*:*:*:*:*:*:*:*`: matches every address;
//! - `192.168.1.{1,2,3}` (or an IPv6 prefix `...:{a,b}`): the listed last parts;
//! - `a,b,c`: any of the listed addresses;
//! - `192.168.*.*`, `192.168.1.1-100`, `1:2:3:4:5:6:7:*`: a part that is `*` or a range,
//!   every later part `*`;
//! - anything else: one IPv4 or IPv6 address.
//!
//! A pattern that fits none of these is an error, which (as in Java) fails the whole file.

use std::net::IpAddr;

/// One address pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// A blank pattern: nothing matches.
    Nothing,
    /// `*`: everything matches.
    Everything,
    /// Any of these addresses.
    AnyOf(Vec<IpAddr>),
    /// Per part (4 octets or 8 hextets) the inclusive range it must lie in.
    Parts {
        /// IPv6 (8 hextets) rather than IPv4 (4 octets).
        v6: bool,
        /// Inclusive bounds of each part.
        bounds: Vec<(u16, u16)>,
    },
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid remote address pattern {0:?}")]
pub struct PatternError(pub String);

impl AddressPattern {
    /// Reads one pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        let error = || PatternError(text.to_owned());
        if text.is_empty() {
            return Ok(Self::Nothing);
        }
        if matches!(text, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(Self::Everything);
        }
        if let Some(open) = text.strip_suffix('}').and_then(|rest| rest.rfind('{').map(|at| (rest, at))) {
            let (rest, at) = open;
            let prefix = &rest[..at];
            if !(prefix.ends_with('.') || prefix.ends_with(':')) {
                return Err(error());
            }
            let addresses = rest[at + 1..]
                .split(',')
                .map(|last| parse_ip(&format!("{prefix}{}", last.trim())).ok_or_else(error))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self::AnyOf(addresses));
        }
        if text.contains(',') {
            let addresses = text
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .map(|item| parse_ip(item).ok_or_else(error))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self::AnyOf(addresses));
        }
        if text.contains('*') || text.contains('-') {
            return parse_parts(text).ok_or_else(error);
        }
        parse_ip(text).map(|ip| Self::AnyOf(vec![ip])).ok_or_else(error)
    }

    /// Whether `ip` matches. IPv4-mapped IPv6 addresses count as their IPv4 address.
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self {
            Self::Nothing => false,
            Self::Everything => true,
            Self::AnyOf(addresses) => addresses.contains(&ip),
            Self::Parts { v6, bounds } => {
                let parts: Vec<u16> = match (ip, v6) {
                    (IpAddr::V4(ip), false) => ip.octets().iter().map(|&octet| u16::from(octet)).collect(),
                    (IpAddr::V6(ip), true) => ip.segments().to_vec(),
                    _ => return false,
                };
                parts.len() == bounds.len()
                    && parts.iter().zip(bounds).all(|(part, (low, high))| (*low..=*high).contains(part))
            }
        }
    }
}

/// An IPv4 or IPv6 address, mapped IPv4 made plain.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// `192.168.*.*`, `10.1.1.1-100`, `1:2:3:4:5:6:7:*`: exact leading parts, then one part that
/// is `*` or `low-high`, then only `*`.
fn parse_parts(text: &str) -> Option<AddressPattern> {
    let v6 = text.contains(':');
    let (separator, count, max, radix) = if v6 { (':', 8, 0xffff, 16) } else { ('.', 4, 255, 10) };
    let parts: Vec<&str> = text.split(separator).map(str::trim).collect();
    if parts.len() != count {
        return None;
    }
    let mut bounds = Vec::with_capacity(count);
    let mut wild = false;
    for part in parts {
        let bound = if part == "*" {
            (0, max)
        } else if wild {
            // After the first wildcard or range every part must be `*`.
            return None;
        } else if let Some((low, high)) = part.split_once('-') {
            let low = u16::from_str_radix(low.trim(), radix).ok()?;
            let high = u16::from_str_radix(high.trim(), radix).ok()?;
            if low > high || high > max {
                return None;
            }
            (low, high)
        } else {
            let exact = u16::from_str_radix(part, radix).ok().filter(|value| *value <= max)?;
            bounds.push((exact, exact));
            continue;
        };
        wild = true;
        bounds.push(bound);
    }
    // The first part is never a wildcard in Java's reading.
    if bounds.first().is_some_and(|(low, high)| low != high) {
        return None;
    }
    Some(AddressPattern::Parts { v6, bounds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn matches(pattern: &str, address: &str) -> bool {
        AddressPattern::parse(pattern).unwrap().matches(ip(address))
    }

    #[test]
    fn blank_and_star() {
        assert!(!matches("", "127.0.0.1"));
        assert!(!matches("  ", "127.0.0.1"));
        for star in ["*", "*.*.*.*", "*:*:*:*:*:*:*:*"] {
            assert!(matches(star, "10.0.0.1"));
            assert!(matches(star, "::1"));
        }
    }

    #[test]
    fn one_address() {
        assert!(matches("192.168.0.1", "192.168.0.1"));
        assert!(!matches("192.168.0.1", "192.168.0.2"));
        assert!(matches("::1", "::1"));
        assert!(matches("0:0:0:0:0:0:0:1", "::1"));
        assert!(matches("127.0.0.1", "::ffff:127.0.0.1"));
        assert!(!matches("127.0.0.1", "::1"));
    }

    #[test]
    fn lists_and_braces() {
        assert!(matches("10.0.0.1, 10.0.0.2", "10.0.0.2"));
        assert!(!matches("10.0.0.1,10.0.0.2", "10.0.0.3"));
        assert!(matches("192.168.1.{1,2,3}", "192.168.1.3"));
        assert!(!matches("192.168.1.{1,2,3}", "192.168.1.4"));
        assert!(matches("1:2:3:4:5:6:7:{8,9}", "1:2:3:4:5:6:7:9"));
    }

    #[test]
    fn wildcards_and_ranges() {
        assert!(matches("10.10.103.*", "10.10.103.250"));
        assert!(!matches("10.10.103.*", "10.10.104.1"));
        assert!(matches("192.168.*.*", "192.168.77.1"));
        assert!(matches("192.168.1.1-100", "192.168.1.100"));
        assert!(!matches("192.168.1.1-100", "192.168.1.101"));
        assert!(!matches("192.168.1.1-100", "192.168.1.0"));
        assert!(matches("192.168.1-5.*", "192.168.5.9"));
        assert!(!matches("192.168.1-5.*", "192.168.6.9"));
        assert!(matches("1:2:3:4:5:6:7:*", "1:2:3:4:5:6:7:ffff"));
        assert!(matches("1:2:3:4:5:6:a-f:*", "1:2:3:4:5:6:c:1"));
        assert!(!matches("10.10.103.*", "::1"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for bad in [
            "10.10.*.1",
            "10.10.1",
            "300.1.1.1",
            "10.10.1.100-1",
            "10.10.1.-5",
            "abc",
            "10.0.0.1,nope",
            "10.0.0.{1,x}",
            "*.1.1.1",
            "10.10.1.1-300",
        ] {
            assert!(AddressPattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panic(text in ".{0,40}", octets in any::<[u8; 4]>()) {
            if let Ok(pattern) = AddressPattern::parse(&text) {
                let _ = pattern.matches(IpAddr::V4(Ipv4Addr::from(octets)));
                let _ = pattern.matches(IpAddr::V6(Ipv6Addr::LOCALHOST));
            }
        }

        #[test]
        fn an_address_matches_itself_and_its_octet_ranges(octets in any::<[u8; 4]>()) {
            let address = IpAddr::V4(Ipv4Addr::from(octets));
            prop_assert!(AddressPattern::parse(&address.to_string()).unwrap().matches(address));
            let [a, b, c, d] = octets;
            let range = format!("{a}.{b}.{c}.{}-{}", d.saturating_sub(1), d.saturating_add(1));
            prop_assert!(AddressPattern::parse(&range).unwrap().matches(address));
            let star = format!("{a}.{b}.*.*");
            prop_assert!(AddressPattern::parse(&star).unwrap().matches(address));
        }
    }
}
