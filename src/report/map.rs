//! The report's world map: a Natural Earth 110m land outline (public domain, `data/ATTRIBUTION.md`) in an
//! equirectangular projection, with the sign-in places of the accounts in findings and impossible-travel
//! arcs labelled with distance and speed. Inline SVG, no script, no external reference.

use std::fmt::Write;

use serde_json::Value;

use super::html::escape_html;
use crate::figures::thousands_f;

/// The land outline as one SVG path in degrees (x = longitude + 180, y = 90 - latitude), made by
/// `scripts/gen_land.py`.
const LAND: &str = include_str!("data/land.path");
/// Latitudes shown: 83° N to 62° S holds every inhabited place and leaves out most of Antarctica.
const NORTH: f64 = 83.0;
const SOUTH: f64 = -62.0;
/// Arcs drawn at most (each is labelled): beyond that the map is unreadable; all are listed in the findings.
pub const MAX_ARCS: usize = 60;
/// Places drawn at most, the busiest first.
pub const MAX_POINTS: usize = 400;

/// A place where accounts in findings signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    pub success: u64,
    pub failure: u64,
}

/// One impossible-travel hop.
#[derive(Debug, Clone, PartialEq)]
pub struct Arc {
    pub from: (f64, f64),
    pub to: (f64, f64),
    pub from_label: String,
    pub to_label: String,
    pub distance_km: f64,
    /// None when no time elapsed between the two sign-ins.
    pub speed_kmh: Option<f64>,
    pub elapsed: String,
    /// The anchor of the finding's group in the report.
    pub anchor: String,
}

fn project(lat: f64, lon: f64) -> (f64, f64) {
    (lon.clamp(-180.0, 180.0) + 180.0, 90.0 - lat.clamp(-90.0, 90.0))
}

/// The hops of an impossible-travel finding's evidence (`hops`, or the headline `from`/`to` alone).
pub fn arcs_from_evidence(evidence: &Value, anchor: &str) -> Vec<Arc> {
    let hops: Vec<&Value> = match evidence.get("hops").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => vec![evidence],
    };
    hops.into_iter().filter_map(|h| arc_of(h, anchor)).collect()
}

fn arc_of(hop: &Value, anchor: &str) -> Option<Arc> {
    let end = |k: &str| -> Option<((f64, f64), String)> {
        let v = hop.get(k)?;
        let (lat, lon) = (v.get("lat")?.as_f64()?, v.get("lon")?.as_f64()?);
        let label = v.get("location").and_then(Value::as_str).unwrap_or("").to_string();
        (lat.is_finite() && lon.is_finite()).then_some(((lat, lon), label))
    };
    let (from, from_label) = end("from")?;
    let (to, to_label) = end("to")?;
    Some(Arc {
        from,
        to,
        from_label,
        to_label,
        distance_km: hop.get("distance_km").and_then(Value::as_f64).unwrap_or(0.0),
        speed_kmh: hop.get("speed_kmh").and_then(Value::as_f64),
        elapsed: hop.get("elapsed").and_then(Value::as_str).unwrap_or("").to_string(),
        anchor: anchor.to_string(),
    })
}

/// The map SVG.
pub fn render(points: &[Point], arcs: &[Arc]) -> String {
    let (top, height) = (90.0 - NORTH, NORTH - SOUTH);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="map" viewBox="0 {top} 360 {height}" role="img" aria-label="World map of sign-in places"><rect x="0" y="{top}" width="360" height="{height}" fill="#eef4f8"/><path d="{}" fill="#d9d4c7" stroke="#b8b2a3" stroke-width="0.15"/>"##,
        LAND.trim()
    );
    let busiest = points.iter().map(|p| p.success + p.failure).max().unwrap_or(1).max(1);
    for p in points.iter().take(MAX_POINTS) {
        let (x, y) = project(p.lat, p.lon);
        let n = p.success + p.failure;
        let r = 0.7 + 2.3 * ((n as f64).ln_1p() / (busiest as f64).ln_1p());
        let fill = if p.failure > p.success { "#e4572e" } else { "#2b6cb0" };
        let _ = write!(
            s,
            r##"<circle cx="{x:.2}" cy="{y:.2}" r="{r:.2}" fill="{fill}" fill-opacity="0.6" stroke="#fff" stroke-width="0.2"><title>{}: {} succeeded, {} failed</title></circle>"##,
            escape_html(&p.label),
            p.success,
            p.failure
        );
    }
    for (n, a) in arcs.iter().take(MAX_ARCS).enumerate() {
        let (x1, y1) = project(a.from.0, a.from.1);
        let (x2, y2) = project(a.to.0, a.to.1);
        // A curve bowed to the left of the direction of travel, a fifth of its length high, numbered at its
        // middle (the table under the map reads the numbers: labels on the map would overlap).
        let (dx, dy) = (x2 - x1, y2 - y1);
        let (cx, cy) = ((x1 + x2) / 2.0 + dy * 0.2, (y1 + y2) / 2.0 - dx * 0.2);
        let (lx, ly) = ((x1 + 2.0 * cx + x2) / 4.0, (y1 + 2.0 * cy + y2) / 4.0);
        let _ = write!(
            s,
            r##"<a href="#{}"><path d="M{x1:.2} {y1:.2}Q{cx:.2} {cy:.2} {x2:.2} {y2:.2}" fill="none" stroke="#a50026" stroke-width="0.6" stroke-dasharray="1.5 0.8"><title>{}</title></path><circle cx="{x1:.2}" cy="{y1:.2}" r="0.9" fill="#a50026"/><circle cx="{x2:.2}" cy="{y2:.2}" r="1.3" fill="#a50026"/><circle cx="{lx:.2}" cy="{ly:.2}" r="2.2" fill="#fff" stroke="#a50026" stroke-width="0.4"/><text x="{lx:.2}" y="{:.2}" class="arc" text-anchor="middle">{}</text></a>"##,
            a.anchor,
            escape_html(&arc_label(a)),
            ly + 1.1,
            n + 1
        );
    }
    let _ = write!(
        s,
        r#"<text x="2" y="{:.1}" class="credit">Land: Natural Earth (public domain)</text></svg>"#,
        top + height - 2.0
    );
    s
}

/// "Paris, France to Mumbai, India: 6,908 km in 1h52m19s, 3,690 km/h".
pub fn arc_label(a: &Arc) -> String {
    let speed = a.speed_kmh.map_or_else(|| "no time between them".to_string(), |v| format!("{} km/h", thousands_f(v)));
    format!("{} to {}: {} km in {}, {speed}", a.from_label, a.to_label, thousands_f(a.distance_km), a.elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_land_outline_is_one_plain_path() {
        assert!(LAND.starts_with('M') && LAND.trim_end().ends_with('Z'));
        assert!(LAND.bytes().all(|b| b"MLZ0123456789. -\n".contains(&b)), "only path commands and numbers");
        assert!(LAND.len() < 80_000);
    }

    #[test]
    fn arcs_come_from_each_hop_and_skip_hops_without_coordinates() {
        let ev = serde_json::json!({"hops": [
            {"from": {"lat": 48.85, "lon": 2.35, "location": "Paris, France"},
             "to": {"lat": 19.07, "lon": 72.88, "location": "Mumbai, India"},
             "distance_km": 6908.4, "speed_kmh": 3690.0, "elapsed": "1h52m"},
            {"from": {"lat": 1.0}, "to": {"lat": 2.0, "lon": 3.0}}
        ]});
        let arcs = arcs_from_evidence(&ev, "case-1");
        assert_eq!(arcs.len(), 1);
        assert_eq!(arcs[0].to_label, "Mumbai, India");
        let svg = render(&[], &arcs);
        assert!(svg.contains("Paris, France to Mumbai, India: 6,908 km in 1h52m, 3,690 km/h"), "{svg}");
        assert!(svg.contains(r##"href="#case-1""##));
    }
}
