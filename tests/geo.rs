//! Locations for impossible travel: the built-in gazetteer on real names, distances, and MaxMind lookups
//! against tiny databases made by `scripts/make_test_mmdb.py`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use authwatch::geo::{haversine_km, Gazetteer, GeoIp, GeoIpError, Location, LocationSource, Resolution};

fn resolve(city: Option<&str>, country: Option<&str>) -> Resolution {
    Gazetteer::builtin().resolve(city, country)
}

fn found(city: Option<&str>, country: Option<&str>) -> Location {
    match resolve(city, country) {
        Resolution::Found(l) => l,
        other => panic!("{city:?}, {country:?}: expected Found, got {other:?}"),
    }
}

fn near(l: &Location, lat: f64, lon: f64, within_km: f64) -> bool {
    haversine_km(l.lat, l.lon, lat, lon) <= within_km
}

fn distance(a: &Location, b: &Location) -> f64 {
    haversine_km(a.lat, a.lon, b.lat, b.lon)
}

#[test]
fn same_city_name_resolves_by_country() {
    let uk = found(Some("London"), Some("United Kingdom"));
    let ca = found(Some("London"), Some("Canada"));
    assert!(near(&uk, 51.51, -0.13, 5.0), "{uk:?}");
    assert!(near(&ca, 42.98, -81.23, 5.0), "{ca:?}");
    assert_eq!(uk.label, "London, United Kingdom");
    assert_eq!(uk.source, LocationSource::City);

    let fr = found(Some("Paris"), Some("France"));
    let us = found(Some("Paris"), Some("United States")); // Paris, Texas
    assert!(near(&fr, 48.86, 2.35, 5.0), "{fr:?}");
    assert!(near(&us, 33.66, -95.56, 5.0), "{us:?}");
}

#[test]
fn city_without_country_resolves_only_when_unique() {
    assert_eq!(resolve(Some("London"), None), Resolution::Ambiguous);
    assert_eq!(resolve(Some("Paris"), None), Resolution::Ambiguous);
    assert!(near(&found(Some("Auckland"), None), -36.85, 174.76, 5.0));
}

#[test]
fn several_same_named_cities_in_one_country_are_ambiguous() {
    // Springfield IL, MO, MA, OR, OH, ...: none dominates.
    assert_eq!(resolve(Some("Springfield"), Some("United States")), Resolution::Ambiguous);
}

#[test]
fn names_match_regardless_of_case_and_accents() {
    let reference = found(Some("São Paulo"), Some("Brazil"));
    for spelling in ["SÃO PAULO", "sao paulo", "  Sao   Paulo ", "SAO PAULO"] {
        assert_eq!(found(Some(spelling), Some("brazil")), reference, "{spelling}");
    }
    let zurich = found(Some("Zurich"), Some("Switzerland"));
    assert_eq!(zurich, found(Some("ZÜRICH"), Some("SWITZERLAND")));
    assert!(near(&zurich, 47.37, 8.55, 5.0));
}

#[test]
fn alternate_names_and_country_aliases_match() {
    assert!(near(&found(Some("New York"), Some("United States")), 40.71, -74.01, 5.0));
    assert!(near(&found(Some("Munich"), Some("Germany")), 48.14, 11.58, 5.0));
    let seoul = found(Some("Seoul"), Some("South Korea"));
    assert_eq!(found(Some("Seoul"), Some("Korea, Republic of")), seoul);
    assert_eq!(found(None, Some("United States of America")), found(None, Some("United States")));
    assert_eq!(found(None, Some("Viet Nam")), found(None, Some("Vietnam")));
    assert_eq!(found(None, Some("Russian Federation")), found(None, Some("Russia")));
}

#[test]
fn unknown_names_are_unknown() {
    assert_eq!(resolve(Some("Atlantis"), Some("United States")), Resolution::Unknown);
    assert_eq!(resolve(Some("London"), Some("Middle-earth")), Resolution::Unknown);
    assert_eq!(resolve(None, Some("Middle-earth")), Resolution::Unknown);
    assert_eq!(resolve(Some("Xyzzyville"), None), Resolution::Unknown);
    assert_eq!(resolve(None, None), Resolution::Missing);
    assert_eq!(resolve(Some(""), Some("null")), Resolution::Missing);
}

#[test]
fn country_only_radius_reflects_size() {
    let australia = found(None, Some("Australia"));
    assert_eq!(australia.source, LocationSource::Country);
    assert_eq!(australia.label, "Australia");
    assert!(australia.radius_km > 1000.0, "{australia:?}");
    let singapore = found(None, Some("Singapore"));
    assert!(singapore.radius_km < 100.0, "{singapore:?}");
    // A country name never says more than the name of its largest city.
    let singapore_city = found(Some("Singapore"), Some("Singapore"));
    assert!(singapore.radius_km >= singapore_city.radius_km, "{singapore:?} vs {singapore_city:?}");
    let hong_kong = found(Some("Hong Kong"), Some("Hong Kong"));
    assert!(found(None, Some("Hong Kong")).radius_km >= hong_kong.radius_km);
    let us = found(None, Some("United States"));
    assert!(us.radius_km > 1500.0, "{us:?}");
}

#[test]
fn known_distances() {
    let new_york = found(Some("New York City"), Some("United States"));
    let auckland = found(Some("Auckland"), Some("New Zealand"));
    let d = distance(&new_york, &auckland);
    assert!((d - 14_200.0).abs() < 100.0, "New York ↔ Auckland {d} km");

    let san_francisco = found(Some("San Francisco"), Some("United States"));
    let san_jose = found(Some("San Jose"), Some("United States"));
    let d = distance(&san_francisco, &san_jose);
    assert!((d - 70.0).abs() < 5.0, "San Francisco ↔ San Jose {d} km");
    // Nearby cities sit within their combined uncertainty: not travel.
    assert!(d < san_francisco.radius_km + san_jose.radius_km + 25.0);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo").join(name)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test addresses are valid")
}

fn open_fixture() -> GeoIp {
    GeoIp::open(&fixture("test-city.mmdb")).expect("fixture database opens")
}

#[test]
fn geoip_known_addresses_resolve_to_their_records() {
    let db = open_fixture();
    let london = db.lookup(ip("81.2.69.142")).expect("London record");
    assert_eq!((london.lat, london.lon, london.radius_km), (51.5142, -0.0931, 10.0));
    assert_eq!(london.label, "London, United Kingdom");
    assert_eq!(london.source, LocationSource::IpDatabase);

    let milton = db.lookup(ip("216.160.83.56")).expect("Milton record");
    assert_eq!((milton.lat, milton.lon, milton.radius_km), (47.2513, -122.3149, 22.0));
    assert_eq!(milton.label, "Milton, United States");

    let japan = db.lookup(ip("2001:218:1::1")).expect("IPv6 country-level record");
    assert_eq!((japan.radius_km, japan.label.as_str()), (500.0, "Japan"));
}

#[test]
fn geoip_without_record_or_coordinates_is_none() {
    let db = open_fixture();
    assert_eq!(db.lookup(ip("8.8.8.8")), None);
    assert_eq!(db.lookup(ip("2606:4700::1")), None);
    assert_eq!(db.lookup(ip("89.160.20.128")), None, "record without location");
}

#[test]
fn geoip_missing_file_is_a_clear_error() {
    let path = fixture("no-such-file.mmdb");
    let err = GeoIp::open(&path).expect_err("missing file fails");
    assert!(matches!(err, GeoIpError::Read { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no-such-file.mmdb") && text.contains("cannot read"), "{text}");
}

#[test]
fn geoip_corrupt_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let random = dir.path().join("random.mmdb");
    // Deterministic noise (xorshift), no metadata marker.
    let mut x: u32 = 0x9e37_79b9;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&random, noise).expect("write noise");

    let good = std::fs::read(fixture("test-city.mmdb")).expect("fixture readable");
    let truncated = dir.path().join("truncated.mmdb");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write truncated copy");
    let empty = dir.path().join("empty.mmdb");
    std::fs::write(&empty, b"").expect("write empty file");

    for path in [&random, &truncated, &empty] {
        let err = GeoIp::open(path).expect_err("corrupt file fails");
        assert!(matches!(err, GeoIpError::Invalid { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()) && text.contains("not a valid MaxMind"), "{text}");
    }
}

#[test]
fn geoip_database_without_locations_is_rejected() {
    let err = GeoIp::open(&fixture("test-asn.mmdb")).expect_err("ASN database fails");
    assert!(matches!(err, GeoIpError::NotCity { .. }), "{err:?}");
    assert!(err.to_string().contains("authwatch-Test-ASN"), "{err}");
}

#[test]
fn geoip_located_records_are_accepted_whatever_the_type() {
    let db = GeoIp::open(&fixture("test-located.mmdb")).expect("located database opens");
    assert_eq!(db.database_type(), "authwatch-Test-Location");
    assert!(db.lookup(ip("81.2.69.1")).is_some());
}
