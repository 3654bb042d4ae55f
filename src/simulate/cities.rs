//! The built-in world: real cities (with the English names Cognito writes), their time zones and the
//! synthetic public address blocks that benign users and attackers sign in from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::rng::Rng;
use crate::time::Timestamp;

/// A city users live in or attackers appear from.
pub struct City {
    pub name: &'static str,
    /// Country as Cognito's `country` field writes it (English name).
    pub country: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// Standard-time offset from UTC in minutes (daylight saving is ignored: the rhythm only needs the hour).
    pub utc_offset_min: i64,
    /// Relative share of the user pool living here.
    pub weight: u32,
    /// First octet of the city's benign IPv4 block; every city has its own, none shared with attackers.
    pub v4_octet: u8,
}

const fn city(
    name: &'static str,
    country: &'static str,
    lat: f64,
    lon: f64,
    utc_offset_min: i64,
    weight: u32,
    v4_octet: u8,
) -> City {
    City { name, country, lat, lon, utc_offset_min, weight, v4_octet }
}

/// Cities of the simulated world. Benign first octets are public unicast /8s (no private, loopback,
/// CGNAT 100.64/10, link-local, documentation, benchmarking or multicast space).
pub const CITIES: [City; 41] = [
    city("New York", "United States", 40.7128, -74.0060, -300, 10, 3),
    city("Los Angeles", "United States", 34.0522, -118.2437, -480, 7, 4),
    city("Chicago", "United States", 41.8781, -87.6298, -360, 5, 8),
    city("Seattle", "United States", 47.6062, -122.3321, -480, 4, 12),
    city("Toronto", "Canada", 43.6532, -79.3832, -300, 4, 13),
    city("Vancouver", "Canada", 49.2827, -123.1207, -480, 2, 17),
    city("Mexico City", "Mexico", 19.4326, -99.1332, -360, 4, 18),
    city("São Paulo", "Brazil", -23.5505, -46.6333, -180, 5, 20),
    city("Buenos Aires", "Argentina", -34.6037, -58.3816, -180, 3, 23),
    city("Bogotá", "Colombia", 4.7110, -74.0721, -300, 2, 24),
    city("Lima", "Peru", -12.0464, -77.0428, -300, 2, 31),
    city("Santiago", "Chile", -33.4489, -70.6693, -240, 2, 34),
    city("London", "United Kingdom", 51.5074, -0.1278, 0, 8, 35),
    city("Dublin", "Ireland", 53.3498, -6.2603, 0, 2, 36),
    city("Lisbon", "Portugal", 38.7223, -9.1393, 0, 2, 37),
    city("Paris", "France", 48.8566, 2.3522, 60, 5, 38),
    city("Berlin", "Germany", 52.5200, 13.4050, 60, 4, 39),
    city("Munich", "Germany", 48.1351, 11.5820, 60, 2, 40),
    city("Madrid", "Spain", 40.4168, -3.7038, 60, 3, 41),
    city("Rome", "Italy", 41.9028, 12.4964, 60, 3, 42),
    city("Amsterdam", "Netherlands", 52.3676, 4.9041, 60, 3, 43),
    city("Zürich", "Switzerland", 47.3769, 8.5417, 60, 2, 46),
    city("Stockholm", "Sweden", 59.3293, 18.0686, 60, 2, 47),
    city("Warsaw", "Poland", 52.2297, 21.0122, 60, 2, 49),
    city("Cairo", "Egypt", 30.0444, 31.2357, 120, 2, 50),
    city("Lagos", "Nigeria", 6.5244, 3.3792, 60, 2, 52),
    city("Nairobi", "Kenya", -1.2921, 36.8219, 180, 1, 54),
    city("Johannesburg", "South Africa", -26.2041, 28.0473, 120, 2, 58),
    city("Dubai", "United Arab Emirates", 25.2048, 55.2708, 240, 2, 59),
    city("Mumbai", "India", 19.0760, 72.8777, 330, 5, 60),
    city("Bengaluru", "India", 12.9716, 77.5946, 330, 4, 61),
    city("Singapore", "Singapore", 1.3521, 103.8198, 480, 3, 62),
    city("Jakarta", "Indonesia", -6.2088, 106.8456, 420, 3, 63),
    city("Bangkok", "Thailand", 13.7563, 100.5018, 420, 2, 64),
    city("Manila", "Philippines", 14.5995, 120.9842, 480, 2, 66),
    city("Hong Kong", "Hong Kong", 22.3193, 114.1694, 480, 2, 67),
    city("Seoul", "South Korea", 37.5665, 126.9780, 540, 3, 68),
    city("Tokyo", "Japan", 35.6762, 139.6503, 540, 5, 69),
    city("Sydney", "Australia", -33.8688, 151.2093, 600, 3, 70),
    city("Melbourne", "Australia", -37.8136, 144.9631, 600, 2, 71),
    city("Auckland", "New Zealand", -36.8485, 174.7633, 720, 1, 72),
];

/// First octets of attacker addresses: public hosting and VPS space, disjoint from every city's block.
const ATTACK_V4_OCTETS: [u8; 16] = [5, 45, 77, 80, 85, 89, 91, 93, 94, 103, 104, 141, 176, 185, 193, 195];

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub fn distance_km(a: &City, b: &City) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().asin()
}

/// The local hour (0..24) at `t` in the city.
pub fn local_hour(city: &City, t: Timestamp) -> usize {
    let local_min = t.millis().div_euclid(60_000) + city.utc_offset_min;
    (local_min.div_euclid(60).rem_euclid(24)) as usize
}

/// A benign IPv4 address in the city's block: `octet.(16 + index).x.y`, host never 0 or 255.
pub fn benign_v4(city: usize, rng: &mut Rng) -> IpAddr {
    let c = &CITIES[city];
    IpAddr::V4(Ipv4Addr::new(c.v4_octet, 16 + city as u8, rng.below(256) as u8, rng.range(1, 254) as u8))
}

/// A benign IPv6 address in a per-city /32 of RIPE's 2a02::/16 (never the 2001:db8::/32 documentation
/// block).
pub fn benign_v6(city: usize, rng: &mut Rng) -> IpAddr {
    let g = |r: &mut Rng| r.below(0x1_0000) as u16;
    IpAddr::V6(Ipv6Addr::new(0x2a02, 0x1000 + city as u16, g(rng), g(rng), 0, 0, g(rng), g(rng).max(1)))
}

/// A residential-proxy IPv4 address in the city's /8, in the upper half of its second octets (a home
/// connection somewhere in the city), never a pool user's own: `octet.(128 + index).x.y`.
pub fn proxy_v4(city: usize, rng: &mut Rng) -> IpAddr {
    let c = &CITIES[city];
    IpAddr::V4(Ipv4Addr::new(c.v4_octet, 128 + city as u8, rng.below(256) as u8, rng.range(1, 254) as u8))
}

/// A residential-proxy IPv6 address: a random /64 in a per-city /32 of 2a02::/16 apart from the pool
/// users' ones, so each proxy is its own /64.
pub fn proxy_v6(city: usize, rng: &mut Rng) -> IpAddr {
    let g = |r: &mut Rng| r.below(0x1_0000) as u16;
    IpAddr::V6(Ipv6Addr::new(0x2a02, 0x2000 + city as u16, g(rng), g(rng), g(rng), g(rng), g(rng), g(rng).max(1)))
}

/// A mobile carrier's carrier-grade NAT address for the city: `octet.(200 + index / 2).x.y` (the
/// outside address of the NAT is public), apart from pool users' and proxies' addresses.
pub fn carrier_v4(city: usize, rng: &mut Rng) -> IpAddr {
    let c = &CITIES[city];
    IpAddr::V4(Ipv4Addr::new(c.v4_octet, 200 + (city / 2) as u8, rng.below(256) as u8, rng.range(1, 254) as u8))
}

/// An attacker IPv4 address, outside every benign block.
pub fn attack_v4(rng: &mut Rng) -> IpAddr {
    let a = *rng.pick(&ATTACK_V4_OCTETS);
    IpAddr::V4(Ipv4Addr::new(a, rng.below(256) as u8, rng.below(256) as u8, rng.range(1, 254) as u8))
}

/// A city index drawn by population weight.
pub fn weighted_city(rng: &mut Rng) -> usize {
    rng.weighted(CITIES.iter().map(|c| c.weight))
}

/// A random city at least `min_km` from `from` (there always is one for distances up to 10,000 km).
pub fn far_city(from: usize, min_km: f64, rng: &mut Rng) -> usize {
    let far: Vec<usize> = (0..CITIES.len()).filter(|&i| distance_km(&CITIES[from], &CITIES[i]) >= min_km).collect();
    if far.is_empty() {
        return from;
    }
    *rng.pick(&far)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_public_v4(ip: Ipv4Addr) -> bool {
        let [a, b, c, _] = ip.octets();
        !(ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.is_broadcast()
            || ip.is_unspecified()
            || a == 0
            || a >= 224
            || (a == 100 && (64..128).contains(&b))
            || (a == 192 && b == 0 && c == 2)
            || (a == 198 && b == 51 && c == 100)
            || (a == 203 && b == 0 && c == 113)
            || (a == 198 && (18..20).contains(&b)))
    }

    #[test]
    fn addresses_are_public_and_attackers_never_share_a_city_block() {
        let mut rng = Rng::new(3, 0);
        let city_octets: Vec<u8> = CITIES.iter().map(|c| c.v4_octet).collect();
        for i in 0..CITIES.len() {
            for _ in 0..50 {
                let IpAddr::V4(v4) = benign_v4(i, &mut rng) else { panic!("v4 expected") };
                assert!(is_public_v4(v4), "{v4}");
                let IpAddr::V4(a) = attack_v4(&mut rng) else { panic!("v4 expected") };
                assert!(is_public_v4(a), "{a}");
                assert!(!city_octets.contains(&a.octets()[0]), "{a}");
                let IpAddr::V6(v6) = benign_v6(i, &mut rng) else { panic!("v6 expected") };
                assert_ne!(v6.segments()[..2], [0x2001, 0x0db8]);
                let (IpAddr::V4(home), IpAddr::V4(proxy), IpAddr::V4(nat)) =
                    (benign_v4(i, &mut rng), proxy_v4(i, &mut rng), carrier_v4(i, &mut rng))
                else {
                    panic!("v4 expected")
                };
                for ip in [proxy, nat] {
                    assert!(is_public_v4(ip), "{ip}");
                    assert_eq!(ip.octets()[0], home.octets()[0], "in the city's block");
                }
                let seconds = [home.octets()[1], proxy.octets()[1], nat.octets()[1]];
                assert!(seconds[0] < 128 && (128..200).contains(&seconds[1]) && seconds[2] >= 200, "{seconds:?}");
                let IpAddr::V6(p6) = proxy_v6(i, &mut rng) else { panic!("v6 expected") };
                assert_ne!(p6.segments()[1], v6.segments()[1]);
            }
        }
        let mut sorted = city_octets.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), CITIES.len(), "each city has its own block");
    }

    #[test]
    fn distances_match_known_routes() {
        let by = |n: &str| CITIES.iter().find(|c| c.name == n).unwrap();
        let d = distance_km(by("London"), by("New York"));
        assert!((5500.0..5620.0).contains(&d), "{d}");
        let d = distance_km(by("Auckland"), by("London"));
        assert!((18_200.0..18_400.0).contains(&d), "{d}");
        assert_eq!(distance_km(by("Tokyo"), by("Tokyo")), 0.0);
    }

    #[test]
    fn local_hours_follow_the_offset() {
        let tokyo = CITIES.iter().find(|c| c.name == "Tokyo").unwrap();
        // 2026-03-02T12:00:00Z is 21:00 in Tokyo.
        assert_eq!(local_hour(tokyo, Timestamp(1_772_452_800_000)), 21);
    }
}
