//! authwatch: finds attacks in Amazon Cognito sign-in logs.
//!
//! Follow one event from source to sink:
//! `source` (files, CloudWatch Logs) → `decode` (vendor JSON → [`event::SignInEvent`]) →
//! `detect` (sliding windows on event time → [`finding::Finding`]) → `correlate` (findings → cases, one
//! per attack: [`correlate::CaseRecord`]) → `sink` (JSON lines, summary, SNS).
//! `spec` loads the detector specs of `filters/`; `replay` wires the stages together for files;
//! `metric_filters` turns the specs into CloudWatch metric filters and alarms, and `pattern` evaluates
//! filter patterns.

pub mod aws;
pub mod cli;
pub mod cmd;
pub mod correlate;
pub mod decode;
pub mod detect;
pub mod drop_later;
pub mod event;
pub mod figures;
pub mod finding;
pub mod geo;
mod id_text;
pub mod metric_filters;
pub mod monitor;
pub mod pattern;
pub mod pipeline;
pub mod replay;
pub mod report;
pub mod respond;
pub mod sanitize;
pub mod score;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod spec;
pub mod time;
