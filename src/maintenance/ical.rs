//! The BCOP iCalendar format: a `VEVENT` with `X-MAINTNOTE-*` properties,
//! in a `text/calendar` part or an `.ics` attachment.

use chrono::{DateTime, Utc};

use crate::desk::maintenance::Provider;
use crate::maintenance::Notice;

pub(crate) fn read(_provider: &Provider, _raw: &[u8], _date: Option<DateTime<Utc>>) -> Notice {
    Notice::Unreadable("not yet written".into())
}
