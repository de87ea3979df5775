//! Placeholder until the calendar reader lands (m-parse).
use chrono::{DateTime, Utc};
pub(crate) fn date(_raw: &[u8]) -> Option<DateTime<Utc>> {
    None
}
