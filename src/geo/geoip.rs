//! MaxMind City database lookups (GeoIP2/GeoLite2 City or any database with the same record shape).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{geoip2, MaxMindDbError, Reader, WithinOptions};

use super::gazetteer::{Location, LocationSource};

/// Radius used when a record has coordinates but no `accuracy_radius`: MaxMind's own value for
/// country-level placements, so a record that does not say how precise it is counts as coarse.
pub const DEFAULT_ACCURACY_RADIUS_KM: f64 = 1000.0;
/// How many records `open` samples, in a database whose type does not say "City", to find coordinates.
const SAMPLE_RECORDS: usize = 1000;

/// An opened MaxMind database known to hold City-style records.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp").field("path", &self.path).field("database_type", &self.database_type()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("cannot read GeoIP database {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid MaxMind database (missing, truncated or corrupt): {source}", path.display())]
    Invalid { path: PathBuf, source: MaxMindDbError },
    #[error(
        "{} is a {database_type:?} database without locations: impossible travel needs a City database",
        path.display()
    )]
    NotCity { path: PathBuf, database_type: String },
}

impl GeoIp {
    /// Open and check a database: it must parse, and either say "City" in its metadata type or hold
    /// records with coordinates.
    pub fn open(path: &Path) -> Result<GeoIp, GeoIpError> {
        let bytes = std::fs::read(path).map_err(|source| GeoIpError::Read { path: path.to_owned(), source })?;
        let reader =
            Reader::from_source(bytes).map_err(|source| GeoIpError::Invalid { path: path.to_owned(), source })?;
        let geoip = GeoIp { reader, path: path.to_owned() };
        let database_type = geoip.reader.metadata().database_type.clone();
        if database_type.to_ascii_lowercase().contains("city") || geoip.has_located_records() {
            Ok(geoip)
        } else {
            Err(GeoIpError::NotCity { path: path.to_owned(), database_type })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database's `database_type` metadata, e.g. "GeoLite2-City".
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The location of an address: coordinates, `accuracy_radius` as the radius, and "City, Country"
    /// from the English names. `None` when the database has no record or the record has no coordinates.
    pub fn lookup(&self, ip: IpAddr) -> Option<Location> {
        let found = self.reader.lookup(ip).ok()?;
        match found.decode::<geoip2::City>() {
            Ok(Some(record)) => location(&record),
            Ok(None) => None,
            Err(err) => {
                tracing::debug!(%ip, error = %err, path = %self.path.display(), "undecodable GeoIP record");
                None
            }
        }
    }

    fn has_located_records(&self) -> bool {
        let Ok(networks) = self.reader.networks(WithinOptions::default()) else {
            return false;
        };
        networks
            .take(SAMPLE_RECORDS)
            .filter_map(Result::ok)
            .any(|r| matches!(r.decode::<geoip2::City>(), Ok(Some(c)) if location(&c).is_some()))
    }
}

fn location(record: &geoip2::City<'_>) -> Option<Location> {
    let lat = record.location.latitude?;
    let lon = record.location.longitude?;
    if !(lat.is_finite() && lon.is_finite()) {
        return None;
    }
    let radius_km = record.location.accuracy_radius.map_or(DEFAULT_ACCURACY_RADIUS_KM, f64::from);
    let names: Vec<&str> = [record.city.names.english, record.country.names.english]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect();
    let label = if names.is_empty() { format!("{lat:.2}, {lon:.2}") } else { names.join(", ") };
    Some(Location { lat, lon, radius_km, source: LocationSource::IpDatabase, label })
}
