//! Where a sign-in came from: the built-in gazetteer, MaxMind lookups, distances and unplaceable addresses.
//!
//! Used only by the impossible-travel detector. Cognito logs carry `city` and `country` names and the IP,
//! never coordinates, so a location is resolved from names ([`gazetteer`]) or from an optional MaxMind City
//! database ([`geoip`]), and always carries an uncertainty radius that the detector subtracts.

pub mod gazetteer;
pub mod geoip;

mod fold_table;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use gazetteer::{Gazetteer, GazetteerError, Location, LocationSource, Resolution};
pub use geoip::{GeoIp, GeoIpError};

/// Mean Earth radius (IUGG), the usual choice for great-circle distances.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in kilometres between two points given in degrees (haversine formula).
pub fn haversine_km(a_lat: f64, a_lon: f64, b_lat: f64, b_lon: f64) -> f64 {
    let (p1, p2) = (a_lat.to_radians(), b_lat.to_radians());
    let d_lat = p2 - p1;
    let d_lon = (b_lon - a_lon).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (d_lon / 2.0).sin().powi(2);
    // Rounding can push h a hair above 1 for antipodal points; asin would then return NaN.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// True for addresses that no geolocation can place: private, loopback, link-local, carrier-grade NAT,
/// documentation, benchmarking, reserved, unspecified, multicast and broadcast ranges, and IPv6
/// unique-local, link-local and IPv4-mapped forms of those.
///
/// Only impossible travel uses this: the project's tests and examples use documentation addresses
/// (203.0.113.x) as attacker IPs for the other detectors, which must keep counting them.
pub fn is_non_routable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_routable_v4(v4),
        IpAddr::V6(v6) => is_non_routable_v6(v6),
    }
}

fn is_non_routable_v4(ip: &Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // 0.0.0.0/8 "this network"
        || (a == 100 && (b & 0b1100_0000) == 64) // 100.64.0.0/10 carrier-grade NAT
        || (a == 198 && (b & 0b1111_1110) == 18) // 198.18.0.0/15 benchmarking
        || a >= 240 // 240.0.0.0/4 reserved (holds the broadcast address)
}

fn is_non_routable_v6(ip: &Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_non_routable_v4(&v4);
    }
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
        || (s[0] == 0x3fff && (s[1] & 0xf000) == 0) // 3fff::/20 documentation (RFC 9637)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_known_distances() {
        assert_eq!(haversine_km(10.0, 20.0, 10.0, 20.0), 0.0);
        // One degree of latitude on the mean sphere.
        let one_degree = haversine_km(0.0, 0.0, 1.0, 0.0);
        assert!((one_degree - 111.195).abs() < 0.01, "{one_degree}");
        // Antipodes: half the circumference, no NaN.
        let half = haversine_km(0.0, 0.0, 0.0, 180.0);
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6, "{half}");
        // Symmetric, and across the antimeridian.
        let a = haversine_km(-36.85, 174.76, 40.71, -74.01);
        let b = haversine_km(40.71, -74.01, -36.85, 174.76);
        assert!((a - b).abs() < 1e-9);
        assert!((haversine_km(0.0, 179.5, 0.0, -179.5) - 111.195).abs() < 0.01);
    }

    #[test]
    fn non_routable_table() {
        let cases: &[(&str, bool)] = &[
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("127.0.0.1", true),
            ("169.254.10.10", true),
            ("100.64.0.1", true),
            ("100.127.255.254", true),
            ("100.128.0.1", false),
            ("192.0.2.10", true),
            ("198.51.100.7", true),
            ("203.0.113.7", true),
            ("198.18.0.1", true),
            ("198.19.255.255", true),
            ("198.20.0.1", false),
            ("0.0.0.0", true),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("240.0.0.1", true),
            ("8.8.8.8", false),
            ("81.2.69.142", false),
            ("::", true),
            ("::1", true),
            ("ff02::1", true),
            ("fc00::1", true),
            ("fd12:3456::1", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", false),
            ("2001:db8::1", true),
            ("3fff::1", true),
            ("3fff:1000::1", false),
            ("::ffff:10.0.0.1", true),
            ("::ffff:203.0.113.9", true),
            ("::ffff:8.8.8.8", false),
            ("2606:4700:4700::1111", false),
            ("2001:4860:4860::8888", false),
        ];
        for (text, expected) in cases {
            let ip: IpAddr = text.parse().expect("test table holds valid addresses");
            assert_eq!(is_non_routable(&ip), *expected, "{text}");
        }
    }
}
