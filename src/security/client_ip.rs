//! Which client a request comes from. Spin appends its own `spin-client-addr`
//! after any value the client sent, so only the last value is trusted
//! (`shared/SPIN-NOTES.md`). Behind a trusted proxy a variable names its header.

use http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

pub const SPIN_CLIENT_ADDR: &str = "spin-client-addr";

/// The client IP in canonical form, or `"unknown"` when the header is absent
/// or unparseable (all such requests then share one rate-limit window).
pub fn client_ip(headers: &HeaderMap, header: Option<&http::HeaderName>) -> String {
    let name = header.map(|h| h.as_str()).unwrap_or(SPIN_CLIENT_ADDR);
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        // A proxy header may hold a list; the proxy appends the peer it saw last.
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| parse_ip(v.trim()))
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The unit a per-client rate limit counts: the address itself for IPv4, but
/// the whole /64 for IPv6, since one subscriber usually holds a /64 and could
/// otherwise pick a fresh address for every attempt.
pub fn rate_limit_key(client_ip: &str) -> String {
    match client_ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
        _ => client_ip.to_owned(),
    }
}

fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| raw.parse::<IpAddr>())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_last_spin_client_addr_wins() {
        let h = headers(&[
            (SPIN_CLIENT_ADDR, "6.6.6.6:1"),
            (SPIN_CLIENT_ADDR, "127.0.0.9:58516"),
        ]);
        assert_eq!(client_ip(&h, None), "127.0.0.9");
    }

    #[test]
    fn ipv6_and_bare_addresses_parse() {
        assert_eq!(
            client_ip(&headers(&[(SPIN_CLIENT_ADDR, "[::1]:80")]), None),
            "::1"
        );
        let proxy = http::HeaderName::from_static("true-client-ip");
        let h = headers(&[
            ("true-client-ip", "203.0.113.7"),
            (SPIN_CLIENT_ADDR, "10.0.0.1:5"),
        ]);
        assert_eq!(client_ip(&h, Some(&proxy)), "203.0.113.7");
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        assert_eq!(rate_limit_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(rate_limit_key("2001:db8:1:2:ffff::9"), "2001:db8:1:2::/64");
        assert_eq!(rate_limit_key("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(rate_limit_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(rate_limit_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(rate_limit_key("unknown"), "unknown");
    }

    #[test]
    fn missing_or_garbage_is_unknown() {
        assert_eq!(client_ip(&HeaderMap::new(), None), "unknown");
        assert_eq!(
            client_ip(&headers(&[(SPIN_CLIENT_ADDR, "nope")]), None),
            "unknown"
        );
    }
}
