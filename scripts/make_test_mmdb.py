#!/usr/bin/env python3
"""Write tiny MaxMind databases for tests/geo.rs into tests/fixtures/geo/:
test-city.mmdb in the GeoIP2 City schema, test-asn.mmdb (an ASN-style database without locations)
and test-located.mmdb (City records under a database type that does not say "City").

Usage:  pip install mmdb-writer==0.2.7 && python3 scripts/make_test_mmdb.py
The locations are made up for the tests (tests/geo.rs); they are not real geolocation data.
"""
import pathlib

from mmdb_writer import MMDBWriter, MmdbF64, MmdbU16
from netaddr import IPSet

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "geo"


def city(city_en, country_en, iso, lat, lon, radius):
    record = {
        "country": {"iso_code": iso, "names": {"en": country_en}},
        "location": {"latitude": MmdbF64(lat), "longitude": MmdbF64(lon), "accuracy_radius": MmdbU16(radius)},
    }
    if city_en:
        record["city"] = {"names": {"en": city_en}}
    return record


RECORDS = [
    ("81.2.69.0/24", city("London", "United Kingdom", "GB", 51.5142, -0.0931, 10)),
    ("216.160.83.0/24", city("Milton", "United States", "US", 47.2513, -122.3149, 22)),
    ("2001:218::/32", city(None, "Japan", "JP", 35.69, 139.69, 500)),
    # A record without coordinates: the lookup must not invent any.
    ("89.160.20.0/24", {"country": {"iso_code": "SE", "names": {"en": "Sweden"}}}),
]


def write(writer, name):
    out = FIXTURES / name
    out.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(out))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


def main():
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="authwatch-Test-City",
        languages=["en"],
        description="authwatch test fixture (made-up locations)",
    )
    for network, record in RECORDS:
        writer.insert_network(IPSet([network]), record)
    write(writer, "test-city.mmdb")

    asn = MMDBWriter(ip_version=4, database_type="authwatch-Test-ASN", languages=["en"], description="test")
    asn.insert_network(IPSet(["81.2.69.0/24"]), {"autonomous_system_number": 64496,
                                                 "autonomous_system_organization": "Example"})
    write(asn, "test-asn.mmdb")

    # Coordinates under a database type that does not say "City": accepted by sampling its records.
    located = MMDBWriter(ip_version=4, database_type="authwatch-Test-Location", languages=["en"], description="test")
    located.insert_network(IPSet(["81.2.69.0/24"]), RECORDS[0][1])
    write(located, "test-located.mmdb")


if __name__ == "__main__":
    main()
