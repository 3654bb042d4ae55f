//! authwatch: finds attacks in Amazon Cognito sign-in logs.
//!
//! Follow one event from source to sink:
//! `source` (files, CloudWatch Logs) → `decode` (vendor JSON → [`event::SignInEvent`]) →
//! `detect` (sliding windows on event time → [`finding::Finding`]) → `sink` (JSON lines, summary, SNS).

pub mod event;
pub mod finding;
pub mod simulate;
pub mod time;
