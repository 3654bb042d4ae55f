//! Decoding per format (Cognito line, CloudTrail record, filter-log-events document, subscription
//! payload) and the filter-pattern engine (text, JSON, space-delimited).

mod common;

use std::io::Write;

use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flate2::write::GzEncoder;
use serde_json::json;

use authwatch::decode::{decode_record, Decoded};
use authwatch::event::Origin;
use authwatch::pattern::FilterPattern;

/// Events per container document (filter-log-events, subscription payload).
const EVENTS_PER_DOCUMENT: usize = 100;

fn lines(format: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::simulate(dir.path(), "log.jsonl", 2_000, 500, format);
    let text = std::fs::read_to_string(path).expect("read simulated log");
    text.lines().take(1_000).map(str::to_owned).collect()
}

/// Decodes `record` and counts the events, so nothing is optimised away.
fn decode(record: &[u8], origin: &Origin) -> usize {
    let mut n = 0;
    decode_record(record, origin, None, &mut |d| n += usize::from(matches!(d, Decoded::Event(_))));
    n
}

fn bench_formats(c: &mut Criterion) {
    let origin = Origin::new("bench".into(), 1);
    let cognito = lines("cognito");
    let cloudtrail = lines("cloudtrail");
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("cognito_line", |b| {
        b.iter(|| {
            i = (i + 1) % cognito.len();
            decode(black_box(cognito[i].as_bytes()), &origin)
        })
    });
    g.bench_function("cloudtrail_record", |b| {
        b.iter(|| {
            i = (i + 1) % cloudtrail.len();
            decode(black_box(cloudtrail[i].as_bytes()), &origin)
        })
    });

    let events: Vec<_> = cognito
        .iter()
        .take(EVENTS_PER_DOCUMENT)
        .enumerate()
        .map(|(n, line)| json!({"logStreamName": "userAuthEvents", "timestamp": 1_772_323_200_000u64 + n as u64, "message": line, "eventId": n.to_string()}))
        .collect();
    let filter_log_events = serde_json::to_vec(&json!({ "events": events, "searchedLogStreams": [] })).expect("json");
    let log_events: Vec<_> = cognito
        .iter()
        .take(EVENTS_PER_DOCUMENT)
        .enumerate()
        .map(|(n, line)| json!({"id": n.to_string(), "timestamp": 1_772_323_200_000u64 + n as u64, "message": line}))
        .collect();
    let payload = serde_json::to_vec(&json!({
        "messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "/aws/cognito/userpool",
        "logStream": "userAuthEvents", "subscriptionFilters": ["authwatch"], "logEvents": log_events,
    }))
    .expect("json");
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&payload).expect("gzip");
    let subscription = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip")).into_bytes();

    g.throughput(Throughput::Elements(EVENTS_PER_DOCUMENT as u64));
    g.bench_function("filter_log_events_document", |b| b.iter(|| decode(black_box(&filter_log_events), &origin)));
    g.bench_function("subscription_payload_base64_gzip", |b| b.iter(|| decode(black_box(&subscription), &origin)));
    g.finish();
}

fn bench_patterns(c: &mut Criterion) {
    let cognito = lines("cognito");
    let access = r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534"#;
    let cases = [
        ("text", "Fail SignIn", cognito.as_slice()),
        ("json", r#"{ $.message.eventType = "SignIn" && $.message.eventResponse = "Fail" }"#, cognito.as_slice()),
    ];
    let mut g = c.benchmark_group("pattern");
    g.throughput(Throughput::Elements(1));
    for (name, pattern, messages) in cases {
        let p = FilterPattern::parse(pattern).expect("pattern");
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % messages.len();
                p.matches(black_box(&messages[i]))
            })
        });
    }
    let p = FilterPattern::parse("[ip, identity, user, timestamp, request, status_code = 4*, size]").expect("pattern");
    g.bench_function("space_delimited", |b| b.iter(|| p.matches(black_box(access))));
    g.finish();
}

criterion_group!(benches, bench_formats, bench_patterns);
criterion_main!(benches);
