//! A provider's own parser: a program (no shell), the mail on its
//! standard input, a `maintenance` as JSON on its standard output.

use chrono::{DateTime, Utc};

use crate::desk::maintenance::Provider;
use crate::maintenance::Notice;

pub(crate) fn read(
    _provider: &Provider,
    _argv: &[String],
    _raw: &[u8],
    _date: Option<DateTime<Utc>>,
) -> Notice {
    Notice::Unreadable("not yet written".into())
}
