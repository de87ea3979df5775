//! The BCOP iCalendar format (jda/maintnote-std): a `VEVENT` with
//! `X-MAINTNOTE-*` properties, in a `text/calendar` part or an `.ics`
//! attachment (`mail::calendar` finds and decodes them), read with the
//! `icalendar` crate. Times become UTC: `Z`, a `TZID` (IANA, through
//! chrono-tz), or for a floating time the provider's `timezone`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use icalendar::parser::{Component, Property, read_components, unfold};

use crate::desk::maintenance::Provider;
use crate::maintenance::{
    Circuit, MAX_CIRCUITS, Maintenance, Notice, Status, clean_id, clean_text,
};

pub(crate) fn read(provider: &Provider, raw: &[u8], date: Option<DateTime<Utc>>) -> Notice {
    let found = crate::mail::calendar::calendars(raw);
    if found.texts.is_empty() {
        let mut reason = "no text/calendar part or .ics attachment".to_owned();
        if !found.skipped.is_empty() {
            reason.push_str(&format!(" (skipped {})", found.skipped.join(", ")));
        }
        return Notice::Unreadable(reason);
    }
    let mut first_error = None;
    for text in &found.texts {
        match read_calendar(provider, text, date) {
            Ok(Some(m)) => return Notice::Read(m),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Notice::Unreadable(first_error.unwrap_or_else(|| {
        "its calendar has no VEVENT with X-MAINTNOTE-MAINTENANCE-ID (not the BCOP format)".into()
    }))
}

/// The maintenance in one calendar's text; `None` when it has no BCOP
/// event.
fn read_calendar(
    provider: &Provider,
    text: &str,
    date: Option<DateTime<Utc>>,
) -> Result<Option<Maintenance>, String> {
    for object in objects(text)? {
        let unfolded = unfold(&object);
        // The parser is a recursive descent; `objects` bounded its depth,
        // and a panic in it is this calendar's error, not the process's.
        let components = std::panic::catch_unwind(|| read_components(&unfolded))
            .map_err(|_| {
                "the calendar cannot be read (the iCalendar parser failed on it)".to_owned()
            })?
            .map_err(|e| format!("the calendar cannot be read: {}", first_line(&e)))?;
        let mut events = Vec::new();
        let mut method_cancel = false;
        for component in &components {
            events_in(component, 0, &mut events);
            method_cancel |= prop(component, "METHOD")
                .is_some_and(|m| text_of(m).trim().eq_ignore_ascii_case("CANCEL"));
        }
        if let Some(event) = events
            .into_iter()
            .find(|e| prop(e, "X-MAINTNOTE-MAINTENANCE-ID").is_some())
        {
            return event_maintenance(provider, event, method_cancel, date).map(Some);
        }
    }
    Ok(None)
}

/// VCALENDAR > VTIMEZONE > DAYLIGHT is 3, VCALENDAR > VEVENT > VALARM too;
/// room for one more level a client may add.
const MAX_NESTING: usize = 4;

/// The calendar's top-level objects (RFC 5545 lets one stream carry
/// several `VCALENDAR`s), each as its own folded text, after checking every
/// content line the way a person can act on: `line N is not an iCalendar
/// line`, an `END` that closes the wrong component, one never ended, or
/// nesting deeper than `MAX_NESTING` (refused before the recursive parser
/// could spend its stack on it). Blank lines, and lines outside any
/// component, are left out.
fn objects(text: &str) -> Result<Vec<String>, String> {
    let mut objects = Vec::new();
    let mut current = String::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((at, first)) = lines.next() {
        let number = at + 1;
        let mut logical = first.trim_end_matches('\r').to_owned();
        let mut folded = vec![first];
        while let Some((_, more)) = lines.next_if(|(_, l)| l.starts_with([' ', '\t'])) {
            logical.push_str(&more.trim_end_matches('\r')[1..]);
            folded.push(more);
        }
        if logical.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = content_line(&logical) else {
            if open.is_empty() {
                // Outside any component: stray text some senders add.
                continue;
            }
            return Err(format!(
                "line {number} of the calendar is not an iCalendar line (NAME:value): {:?}",
                clean_text(&logical, 60)
            ));
        };
        // Only BEGIN and END name a component: no copy of other values.
        let component = || value.trim().to_ascii_uppercase();
        if name.eq_ignore_ascii_case("BEGIN") {
            if open.len() == MAX_NESTING {
                return Err(format!(
                    "the calendar nests components more than {MAX_NESTING} deep (line {number})"
                ));
            }
            open.push((component(), number));
        } else if open.is_empty() {
            continue;
        } else if name.eq_ignore_ascii_case("END") {
            let component = component();
            let (begun, line) = open.pop().unwrap_or_default();
            if begun != component {
                return Err(format!(
                    "line {number} of the calendar ends {} but {} (begun at line {line}) is open",
                    clean_text(&component, 40),
                    clean_text(&begun, 40)
                ));
            }
        }
        for piece in folded {
            current.push_str(piece);
            current.push('\n');
        }
        if open.is_empty() {
            objects.push(std::mem::take(&mut current));
        }
    }
    if let Some((begun, line)) = open.first() {
        return Err(format!(
            "the calendar's {} (begun at line {line}) is never ended: the mail may be cut short",
            clean_text(begun, 40)
        ));
    }
    Ok(objects)
}

/// A content line's name and value (RFC 5545 3.1: `name *(";" param) ":"
/// value`, a param's values quoted or not), or `None` when it is not one.
fn content_line(line: &str) -> Option<(&str, &str)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let name_end = line.find(|c: char| !is_name(c))?;
    if name_end == 0 {
        return None;
    }
    let mut rest = &line[name_end..];
    while let Some(params) = rest.strip_prefix(';') {
        let key_end = params.find(|c: char| !is_name(c))?;
        let mut value = params[key_end..]
            .strip_prefix('=')
            .filter(|_| key_end > 0)?;
        loop {
            value = match value.strip_prefix('"') {
                Some(quoted) => &quoted[quoted.find('"')? + 1..],
                None => &value[value.find([';', ':', ',', '"']).unwrap_or(value.len())..],
            };
            match value.strip_prefix(',') {
                Some(more) => value = more,
                None => break,
            }
        }
        rest = value;
    }
    Some((&line[..name_end], rest.strip_prefix(':')?))
}

fn first_line(text: &str) -> String {
    clean_text(text.lines().next().unwrap_or(""), 200)
}

fn events_in<'a>(component: &'a Component<'a>, depth: usize, out: &mut Vec<&'a Component<'a>>) {
    if component.name.as_str().eq_ignore_ascii_case("VEVENT") {
        out.push(component);
    }
    if depth < 4 {
        for inner in &component.components {
            events_in(inner, depth + 1, out);
        }
    }
}

fn prop<'a>(event: &'a Component<'a>, name: &str) -> Option<&'a Property<'a>> {
    event
        .properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(property: &'a Property<'a>, name: &str) -> Option<&'a str> {
    property
        .params
        .iter()
        .find(|p| p.key.as_str().eq_ignore_ascii_case(name))
        .and_then(|p| p.val.as_ref())
        .map(|v| v.as_str())
}

/// A TEXT value, unescaped (`\,` `\;` `\n` `\\`).
fn text_of(property: &Property<'_>) -> String {
    let raw = property.val.as_str();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn event_maintenance(
    provider: &Provider,
    event: &Component<'_>,
    method_cancel: bool,
    date: Option<DateTime<Utc>>,
) -> Result<Maintenance, String> {
    let text = |name: &str| prop(event, name).map(text_of);
    let maintenance_id = text("X-MAINTNOTE-MAINTENANCE-ID")
        .map(|id| clean_id("X-MAINTNOTE-MAINTENANCE-ID", &id))
        .transpose()?
        .flatten()
        .ok_or("it has no X-MAINTNOTE-MAINTENANCE-ID")?;
    let status = status(event, method_cancel)?;
    let start = time(
        provider,
        prop(event, "DTSTART").ok_or("it has no DTSTART")?,
        "DTSTART",
    )?;
    // RFC 5545: DTEND, or DTSTART plus DURATION.
    let end = match (prop(event, "DTEND"), prop(event, "DURATION")) {
        (Some(dtend), _) => time(provider, dtend, "DTEND")?,
        (None, Some(duration)) => {
            let value = duration.val.as_str();
            start
                .checked_add_signed(duration_of(value).ok_or_else(|| {
                    format!(
                        "DURATION {:?} is not a length of time (like PT2H or P1DT4H)",
                        clean_text(value, 40)
                    )
                })?)
                .ok_or("its DURATION ends past any date")?
        }
        (None, None) => return Err("it has no DTEND (nor a DURATION)".into()),
    };
    if end < start {
        return Err("its DTEND is before its DTSTART".into());
    }
    let sequence = text("SEQUENCE")
        .map(|s| {
            s.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("SEQUENCE {:?} is not a whole number", clean_text(&s, 40)))
        })
        .transpose()?;
    let stamp = match prop(event, "DTSTAMP") {
        Some(p) => Some(time(provider, p, "DTSTAMP")?),
        None => date,
    };
    let circuits = circuits(event)?;
    let optional = |name: &str| -> Result<Option<String>, String> {
        Ok(text(name)
            .map(|t| clean_id(name, &t))
            .transpose()?
            .flatten())
    };
    let organizer = text("ORGANIZER").map(|o| {
        let o = o.trim();
        let o = o
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("mailto:"))
            .map_or(o, |_| &o[7..]);
        clean_text(o, 200)
    });
    Ok(Maintenance {
        provider: provider.name.clone(),
        maintenance_id,
        account: optional("X-MAINTNOTE-ACCOUNT")?,
        status,
        sequence,
        stamp,
        start,
        end,
        summary: clean_text(
            &text("SUMMARY").unwrap_or_default(),
            crate::maintenance::MAX_SUMMARY,
        ),
        organizer: organizer.filter(|o| !o.is_empty()),
        circuits,
    })
}

/// An RFC 5545 dur-value (`P2W`, `P1DT4H`, `PT90M`, `PT1H30M15S`), not
/// negative and at most `MAX_DURATION_DAYS`; `None` for anything else.
fn duration_of(value: &str) -> Option<chrono::Duration> {
    let value = value.trim();
    let value = value.strip_prefix('+').unwrap_or(value);
    let rest = value.strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.find(['T', 't']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let mut seconds: i64 = 0;
    let mut any = false;
    // Each part: digits then its unit, the units in this order, each once.
    let mut parts = |text: &str, units: &[(char, i64)]| -> Option<()> {
        let mut text = text;
        let mut next = 0;
        while !text.is_empty() {
            let digits = text.find(|c: char| !c.is_ascii_digit())?;
            if digits == 0 || digits > 6 {
                return None;
            }
            let n: i64 = text[..digits].parse().ok()?;
            let unit = text[digits..].chars().next()?.to_ascii_uppercase();
            let at = units[next..].iter().position(|(u, _)| *u == unit)? + next;
            seconds = seconds.checked_add(n.checked_mul(units[at].1)?)?;
            next = at + 1;
            any = true;
            text = &text[digits + 1..];
        }
        Some(())
    };
    parts(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        parts(time, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    (any && seconds <= MAX_DURATION_DAYS * 86_400).then(|| chrono::Duration::seconds(seconds))
}

/// The longest maintenance a DURATION may give: a year.
const MAX_DURATION_DAYS: i64 = 366;

/// `X-MAINTNOTE-STATUS`, or BCOP's fallback to `STATUS`, or a calendar
/// sent with `METHOD:CANCEL` (RFC 5546: the event is cancelled).
fn status(event: &Component<'_>, method_cancel: bool) -> Result<Status, String> {
    match prop(event, "X-MAINTNOTE-STATUS").map(text_of) {
        Some(word) => Status::parse(&word).ok_or_else(|| {
            format!(
                "X-MAINTNOTE-STATUS {:?} is none of BCOP's statuses",
                clean_text(&word, 40)
            )
        }),
        None => match prop(event, "STATUS")
            .map(|p| text_of(p).trim().to_ascii_uppercase())
            .as_deref()
        {
            Some("CANCELLED") => Ok(Status::Cancelled),
            Some("TENTATIVE") => Ok(Status::Tentative),
            Some("CONFIRMED") => Ok(Status::Confirmed),
            _ if method_cancel => Ok(Status::Cancelled),
            _ => Err("it has no X-MAINTNOTE-STATUS (nor an iCalendar STATUS): \
                 the notice does not say whether the work is on"
                .into()),
        },
    }
}

/// Each `X-MAINTNOTE-OBJECT-ID` with its impact: its own parameter, else
/// the event's `X-MAINTNOTE-IMPACT`, else UNKNOWN.
fn circuits(event: &Component<'_>) -> Result<Vec<Circuit>, String> {
    let impact = prop(event, "X-MAINTNOTE-IMPACT")
        .map(|p| clean_text(&text_of(p), 40))
        .filter(|i| !i.is_empty());
    let mut circuits = Vec::new();
    for object in event.properties.iter().filter(|p| {
        p.name
            .as_str()
            .eq_ignore_ascii_case("X-MAINTNOTE-OBJECT-ID")
    }) {
        let Some(id) = clean_id("X-MAINTNOTE-OBJECT-ID", &text_of(object))? else {
            continue;
        };
        if circuits.len() == MAX_CIRCUITS {
            return Err(format!("it names more than {MAX_CIRCUITS} objects"));
        }
        let impact = param(object, "X-MAINTNOTE-OBJECT-IMPACT")
            .map(|i| clean_text(i, 40))
            .filter(|i| !i.is_empty())
            .or_else(|| impact.clone())
            .unwrap_or_else(|| "UNKNOWN".into());
        circuits.push(Circuit { id, impact });
    }
    Ok(circuits)
}

/// A DATE-TIME (or DATE) property in UTC.
fn time(provider: &Provider, property: &Property<'_>, name: &str) -> Result<DateTime<Utc>, String> {
    let value = property.val.as_str().trim();
    let shown = clean_text(value, 40);
    let bad = || format!("{name} {shown:?} is not a date and time");
    let is_date = param(property, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || value.len() == 8;
    let (local, utc) = if is_date {
        let day = NaiveDate::parse_from_str(value, "%Y%m%d").map_err(|_| bad())?;
        (day.and_hms_opt(0, 0, 0).ok_or_else(bad)?, false)
    } else if let Some(v) = value.strip_suffix(['Z', 'z']) {
        (
            NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").map_err(|_| bad())?,
            true,
        )
    } else {
        (
            NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").map_err(|_| bad())?,
            false,
        )
    };
    // A whole day with no zone anywhere: the day in UTC.
    if utc || (is_date && param(property, "TZID").is_none() && provider.timezone.is_none()) {
        return Ok(Utc.from_utc_datetime(&local));
    }
    let zone = match param(property, "TZID") {
        Some(tzid) => {
            let name_only = tzid.trim().trim_matches('"').trim_start_matches('/');
            name_only.parse::<chrono_tz::Tz>().map_err(|_| {
                format!(
                    "{name} names time zone {:?}, which is no IANA zone",
                    clean_text(tzid, 60)
                )
            })?
        }
        None => provider.timezone.ok_or_else(|| {
            format!(
                "{name} {shown} has no time zone: set timezone: for provider {}",
                provider.name
            )
        })?,
    };
    local_to_utc(&zone, &local).ok_or_else(|| format!("{name} {shown:?} does not exist in {zone}"))
}

/// A wall-clock time in `zone` as UTC: the earlier of two in a repeated
/// hour, and in a skipped hour the first valid time after it.
fn local_to_utc(zone: &chrono_tz::Tz, local: &NaiveDateTime) -> Option<DateTime<Utc>> {
    for minutes in [0, 30, 60, 90, 120] {
        let shifted = *local + chrono::Duration::minutes(minutes);
        if let Some(t) = zone.from_local_datetime(&shifted).earliest() {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::maintenance::Parser;

    fn provider(timezone: Option<chrono_tz::Tz>) -> Provider {
        Provider {
            name: "zayo".into(),
            senders: vec!["*@zayo.com".into()],
            parser: Parser::Ical,
            timezone,
            dir: None,
        }
    }

    fn mail(event: &str) -> Vec<u8> {
        format!("From: mr@zayo.com\r\nDate: Thu, 3 Dec 2026 06:00:00 +0000\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n{event}END:VEVENT\r\nEND:VCALENDAR\r\n").into_bytes()
    }

    fn read_event(event: &str, tz: Option<chrono_tz::Tz>) -> Notice {
        let raw = mail(event);
        read(&provider(tz), &raw, crate::mail::calendar::date(&raw))
    }

    const BASE: &str = "X-MAINTNOTE-MAINTENANCE-ID:M1\r\nX-MAINTNOTE-STATUS:CONFIRMED\r\nDTEND:20270110T040000Z\r\n";

    #[test]
    fn times_in_utc_tzid_floating_and_across_dst() {
        let base = BASE.replace("20270110T040000Z", "20280101T000000Z");
        let start = |dtstart: &str, tz| match read_event(&format!("{base}{dtstart}\r\n"), tz) {
            Notice::Read(m) => Ok(crate::maintenance::format_time(&m.start)),
            Notice::Unreadable(r) => Err(r),
        };
        assert_eq!(
            start("DTSTART:20270110T020000Z", None).unwrap(),
            "2027-01-10T02:00:00Z"
        );
        assert_eq!(
            start("DTSTART;TZID=America/New_York:20270109T210000", None).unwrap(),
            "2027-01-10T02:00:00Z"
        );
        assert_eq!(
            start("DTSTART;TZID=\"/Europe/Berlin\":20270110T030000", None).unwrap(),
            "2027-01-10T02:00:00Z"
        );
        assert!(
            start("DTSTART;TZID=Eastern Standard Time:20270110T020000", None)
                .unwrap_err()
                .contains("no IANA zone")
        );
        let floating = start("DTSTART:20270110T020000", None).unwrap_err();
        assert!(
            floating.contains("set timezone: for provider zayo"),
            "{floating}"
        );
        assert_eq!(
            start("DTSTART:20270110T020000", Some(chrono_tz::Asia::Tokyo)).unwrap(),
            "2027-01-09T17:00:00Z"
        );
        // 2027-03-14 02:30 does not exist in New York; 2027-11-07 01:30 twice.
        assert_eq!(
            start("DTSTART;TZID=America/New_York:20270314T023000", None).unwrap(),
            "2027-03-14T07:00:00Z"
        );
        assert_eq!(
            start("DTSTART;TZID=America/New_York:20271107T013000", None).unwrap(),
            "2027-11-07T05:30:00Z"
        );
        assert_eq!(
            start("DTSTART;VALUE=DATE:20270110", None).unwrap(),
            "2027-01-10T00:00:00Z"
        );
    }

    #[test]
    fn required_properties_and_bounds_are_named() {
        for (event, said) in [
            (
                "X-MAINTNOTE-STATUS:CONFIRMED\r\nDTSTART:20270110T020000Z\r\nDTEND:20270110T040000Z\r\nSUMMARY:x\r\n",
                "not the BCOP format",
            ),
            (
                "X-MAINTNOTE-MAINTENANCE-ID:M\r\nDTSTART:20270110T020000Z\r\nDTEND:20270110T040000Z\r\n",
                "X-MAINTNOTE-STATUS",
            ),
            (
                "X-MAINTNOTE-MAINTENANCE-ID:M\r\nX-MAINTNOTE-STATUS:DONE\r\nDTSTART:20270110T020000Z\r\nDTEND:20270110T040000Z\r\n",
                "none of BCOP",
            ),
            (
                "X-MAINTNOTE-MAINTENANCE-ID:M\r\nX-MAINTNOTE-STATUS:CONFIRMED\r\nDTEND:20270110T040000Z\r\n",
                "no DTSTART",
            ),
            (
                "X-MAINTNOTE-MAINTENANCE-ID:M\r\nX-MAINTNOTE-STATUS:CONFIRMED\r\nDTSTART:20270110T050000Z\r\nDTEND:20270110T040000Z\r\n",
                "before its DTSTART",
            ),
            (
                "X-MAINTNOTE-MAINTENANCE-ID:M\r\nX-MAINTNOTE-STATUS:CONFIRMED\r\nSEQUENCE:-1\r\nDTSTART:20270110T020000Z\r\nDTEND:20270110T040000Z\r\n",
                "SEQUENCE",
            ),
        ] {
            match read_event(event, None) {
                Notice::Unreadable(reason) => assert!(reason.contains(said), "{event}: {reason}"),
                Notice::Read(m) => panic!("{event}: read {m:?}"),
            }
        }
        let long = format!(
            "X-MAINTNOTE-MAINTENANCE-ID:{}\r\nX-MAINTNOTE-STATUS:CONFIRMED\r\nDTSTART:20270110T020000Z\r\nDTEND:20270110T040000Z\r\n",
            "A".repeat(201)
        );
        assert!(
            matches!(read_event(&long, None), Notice::Unreadable(r) if r.contains("longer than"))
        );
        let many: String = (0..=MAX_CIRCUITS)
            .map(|n| format!("X-MAINTNOTE-OBJECT-ID:C{n}\r\n"))
            .collect();
        assert!(
            matches!(read_event(&format!("{BASE}DTSTART:20270110T020000Z\r\n{many}"), None), Notice::Unreadable(r) if r.contains("objects"))
        );
    }

    #[test]
    fn objects_escapes_organizer_and_the_status_fallback() {
        let event = format!(
            "{BASE}DTSTART:20270110T020000Z\r\nSUMMARY:Fibre splice\\, Paris\\; night\\nwork\r\nORGANIZER:mailto:noc@zayo.com\r\nX-MAINTNOTE-IMPACT:DEGRADED\r\nX-MAINTNOTE-OBJECT-ID;X-MAINTNOTE-OBJECT-IMPACT=OUTAGE:CID-1\r\nX-MAINTNOTE-OBJECT-ID:CID-2\r\n"
        );
        let Notice::Read(m) = read_event(&event, None) else {
            panic!()
        };
        assert_eq!(m.summary, "Fibre splice, Paris; night work");
        assert_eq!(m.organizer.as_deref(), Some("noc@zayo.com"));
        assert_eq!(
            m.circuits,
            vec![
                Circuit {
                    id: "CID-1".into(),
                    impact: "OUTAGE".into()
                },
                Circuit {
                    id: "CID-2".into(),
                    impact: "DEGRADED".into()
                },
            ]
        );
        assert_eq!(
            m.stamp
                .map(|s| crate::maintenance::format_time(&s))
                .as_deref(),
            Some("2026-12-03T06:00:00Z"),
            "no DTSTAMP: the mail's date"
        );
        let cancelled = "X-MAINTNOTE-MAINTENANCE-ID:M1\r\nSTATUS:CANCELLED\r\nDTSTART:20270110T020000Z\r\nDTEND:20270110T040000Z\r\n";
        let Notice::Read(m) = read_event(cancelled, None) else {
            panic!()
        };
        assert_eq!(m.status, Status::Cancelled);
    }

    #[test]
    fn duration_stands_in_for_dtend_and_method_cancel_cancels() {
        let event = |rest: &str| {
            format!("X-MAINTNOTE-MAINTENANCE-ID:M1\r\nDTSTART:20270110T020000Z\r\n{rest}")
        };
        let end = |rest: &str| match read_event(&event(rest), None) {
            Notice::Read(m) => Ok(crate::maintenance::format_time(&m.end)),
            Notice::Unreadable(r) => Err(r),
        };
        let confirmed = "X-MAINTNOTE-STATUS:CONFIRMED\r\n";
        for (duration, ends) in [
            ("PT2H", "2027-01-10T04:00:00Z"),
            ("PT90M", "2027-01-10T03:30:00Z"),
            ("P1DT4H", "2027-01-11T06:00:00Z"),
            ("P1W", "2027-01-17T02:00:00Z"),
            ("+PT1H30M15S", "2027-01-10T03:30:15Z"),
            ("pt1h", "2027-01-10T03:00:00Z"),
        ] {
            assert_eq!(
                end(&format!("{confirmed}DURATION:{duration}\r\n")).as_deref(),
                Ok(ends),
                "{duration}"
            );
        }
        for bad in [
            "-PT2H",
            "PT",
            "P",
            "2H",
            "PT2",
            "PTH",
            "P1H",
            "PT1M1H",
            "PT1H1H",
            "P367D",
            "P9999999D",
            "PT2H junk",
        ] {
            let said = end(&format!("{confirmed}DURATION:{bad}\r\n")).unwrap_err();
            assert!(said.contains("DURATION"), "{bad}: {said}");
        }
        // DTEND wins over a DURATION (a calendar should not give both).
        assert_eq!(
            end(&format!(
                "{confirmed}DTEND:20270110T030000Z\r\nDURATION:PT9H\r\n"
            ))
            .as_deref(),
            Ok("2027-01-10T03:00:00Z")
        );
        assert!(
            end(confirmed)
                .unwrap_err()
                .contains("no DTEND (nor a DURATION)")
        );
        // METHOD:CANCEL cancels an event that gives no status of its own;
        // an explicit X-MAINTNOTE-STATUS still wins.
        let calendar = |method: &str, status: &str| {
            format!(
                "From: mr@zayo.com\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\n{}{status}DTEND:20270110T040000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                event("")
            )
        };
        let status = |method: &str, status: &str| match read(
            &provider(None),
            calendar(method, status).as_bytes(),
            None,
        ) {
            Notice::Read(m) => Ok(m.status),
            Notice::Unreadable(r) => Err(r),
        };
        assert_eq!(status("CANCEL", ""), Ok(Status::Cancelled));
        assert_eq!(status("cancel", ""), Ok(Status::Cancelled));
        assert_eq!(status("CANCEL", confirmed), Ok(Status::Confirmed));
        assert!(
            status("REQUEST", "")
                .unwrap_err()
                .contains("X-MAINTNOTE-STATUS")
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let base = mail(&format!("{BASE}DTSTART:20270110T020000Z\r\n"));
        for _ in 0..3000 {
            let mut raw = base.clone();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % raw.len();
                raw[at] = (seed >> 32) as u8;
            }
            let _ = read(&provider(None), &raw, None);
        }
    }

    /// tests/fixtures/maintenance/: every notice, in LF and CRLF, reads
    /// as the object written by hand beside it.
    #[test]
    fn the_fixture_corpus_reads_as_written_by_hand() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/maintenance");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "eml") {
                continue;
            }
            let expected: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(path.with_extension("json")).unwrap(),
            )
            .unwrap();
            let timezone = expected["timezone"]
                .as_str()
                .map(|z| z.parse::<chrono_tz::Tz>().unwrap());
            let mut provider = provider(timezone);
            expected["provider"]
                .as_str()
                .unwrap()
                .clone_into(&mut provider.name);
            let raw = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
            let lf = raw.replace("\r\n", "\n");
            for form in [lf.clone(), lf.replace('\n', "\r\n")] {
                let notice = crate::maintenance::read(
                    &provider,
                    form.as_bytes(),
                    crate::mail::calendar::date(form.as_bytes()),
                );
                match (notice, expected["unreadable"].as_str()) {
                    (Notice::Read(m), None) => assert_eq!(
                        serde_json::to_value(&m).unwrap(),
                        expected["maintenance"],
                        "{}",
                        path.display()
                    ),
                    (Notice::Unreadable(r), Some(said)) => {
                        assert!(r.contains(said), "{}: {r}", path.display())
                    }
                    (other, _) => panic!("{}: {other:?}", path.display()),
                }
            }
            seen += 1;
        }
        assert!(seen >= 14, "only {seen} fixtures");
    }

    /// Hostile nesting (tens of thousands of BEGIN lines within the size
    /// cap) is refused before the recursive parser could exhaust the stack.
    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let n = 50_000;
        let raw = format!(
            "From: mr@zayo.com\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n{}{}END:VCALENDAR\r\n",
            "BEGIN:X\r\n".repeat(n),
            "end:x\r\n".repeat(n)
        );
        let Notice::Unreadable(reason) = read(&provider(None), raw.as_bytes(), None) else {
            panic!("a 50,000-deep calendar was read");
        };
        assert!(reason.contains("more than 4 deep (line 5)"), "{reason}");
    }

    /// A calendar the parser would refuse says which line is wrong, in
    /// the mail's own line numbers (folded lines counted as they arrived).
    #[test]
    fn a_broken_calendar_names_its_line() {
        let calendar = |body: &str| {
            let raw = format!("From: mr@zayo.com\r\nContent-Type: text/calendar\r\n\r\n{body}");
            match read(&provider(None), raw.as_bytes(), None) {
                Notice::Read(m) => Ok(m.maintenance_id),
                Notice::Unreadable(r) => Err(r),
            }
        };
        let event = format!(
            "BEGIN:VEVENT\r\n{BASE}DTSTART:20270110T020000Z\r\nSUMMARY:a folded\r\n  summary\r\nEND:VEVENT\r\n"
        );
        for (body, said) in [
            (
                format!("BEGIN:VCALENDAR\r\n{event}this line is junk\r\nEND:VCALENDAR\r\n"),
                "line 10 of the calendar is not an iCalendar line (NAME:value): \"this line is junk\"",
            ),
            (
                format!("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n{BASE}END:VCALENDAR\r\n"),
                "line 6 of the calendar ends VCALENDAR but VEVENT (begun at line 2) is open",
            ),
            (
                format!("BEGIN:VCALENDAR\r\n{event}"),
                "VCALENDAR (begun at line 1) is never ended",
            ),
            (
                format!(
                    "BEGIN:VCALENDAR\r\nDTSTART;TZID=\"Europe/Paris:20270101T000000\r\n{event}END:VCALENDAR\r\n"
                ),
                "line 2 of the calendar is not an iCalendar line",
            ),
            (
                format!("BEGIN:VCALENDAR\r\n;X=1:v\r\n{event}END:VCALENDAR\r\n"),
                "line 2 ",
            ),
        ] {
            let got = calendar(&body).unwrap_err();
            assert!(got.contains(said), "{body}: {got}");
        }
        // Several VCALENDARs in one stream (RFC 5545 allows it), blank
        // lines, stray text outside any component and lowercase names all
        // read; so do parameters with quoted values holding ; and :.
        let ok = [
            format!(
                "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\n{event}END:VCALENDAR\r\n"
            ),
            format!("\r\nstray text\r\nbegin:vcalendar\r\n\r\n{event}end:vcalendar\r\n\r\n"),
            format!(
                "BEGIN:VCALENDAR\r\nX-A;CN=\"Doe; J: NOC\";ROLE=A,\"B:C\":x\r\n{event}END:VCALENDAR\r\n"
            ),
        ];
        for body in ok {
            assert_eq!(calendar(&body).as_deref(), Ok("M1"), "{body}");
        }
    }
}
