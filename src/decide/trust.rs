//! Trust: does the mail prove its From address, and may that sender ask for
//! this request?
//!
//! Authentication reads only `Authentication-Results` headers (RFC 8601)
//! that the trusted MX wrote, and it finds them by position. Every hop
//! prepends its headers, so the message as the sender wrote it sits below
//! the `Received` header the MX added on entry, and everything above that
//! header was added by the MX or by hops after it. The sender can put
//! anything below, including fake `Received: ... by <trusted MX>` and
//! `Authentication-Results: <trusted id>; dmarc=pass` headers, but nothing
//! above. So:
//!
//! - **The MX's entry is its topmost `Received` header**, not its lowest:
//!   the lowest is whatever the sender chose to put at the bottom, and a
//!   fake one there would move the counted region into the sender's own
//!   headers. (The price: a mail that passes the MX twice, e.g. through a
//!   content filter that re-injects it, is judged by the second pass.)
//!   No such header: the mail never passed the trusted MX.
//! - **`position: above`** (RFC 8601 section 4; Postfix with milters that
//!   insert at the top, rspamd): only results between that header and the
//!   next newer `Received` (or the top) count. That region holds nothing
//!   the sender wrote, so each trusted result in it is the MX's own; a
//!   result below the MX's `Received` never counts, also when the MX wrote
//!   none (a milter skipped, `milter_default_action = accept`, locally
//!   submitted mail).
//! - **`position: below`** (Gmail): the MX writes one header
//!   directly below its `Received`, so the region runs from there down to
//!   the next `Received` — and that region also holds the headers the
//!   sender put at the top of the message. The MX's own header is the
//!   first one below its `Received`; only that one can give the verdict
//!   (and only with a trusted authserv-id). The others in the region may
//!   only take trust away.
//!
//! In both layouts only trusted authserv-ids count, and the results for
//! the required method in every trusted header of the region must agree:
//! `dmarc=pass` next to `dmarc=fail`, or a pass for another domain, is a
//! conflict and the mail is not authenticated. A trusted header in the
//! region that does not parse makes it unauthenticated too.
//!
//! Access is default deny: a list of grants (request types × senders,
//! optionally only for the sender's own account).

use std::fmt;

use crate::decide::authres::{self, AuthResults, MethodResult};
use crate::desk::HELP;
use crate::desk::config::{Authentication, Grant, Position, Require, Scope};
use crate::mail::{Mail, Trace};

/// Whether the From address is proven, and how or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Authenticated {
    Yes(String),
    No(String),
}

impl Authenticated {
    pub(crate) fn is_yes(&self) -> bool {
        matches!(self, Self::Yes(_))
    }
}

impl fmt::Display for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Yes(how) => write!(f, "authenticated: {how}"),
            Self::No(why) => write!(f, "not authenticated: {why}"),
        }
    }
}

pub(crate) fn authenticate(settings: Option<&Authentication>, mail: &Mail) -> Authenticated {
    let Some(settings) = settings else {
        return Authenticated::No(
            "config.yaml has no authentication: section, so no sender is trusted (see config.example.yaml)".into(),
        );
    };
    if let Some(problem) = &mail.sender_problem {
        return Authenticated::No(problem.to_string());
    }
    let Some(sender) = mail.sender.as_deref() else {
        return Authenticated::No("the mail has no usable sender address".into());
    };
    if settings.require == Require::None {
        return Authenticated::Yes(
            "authentication.require is none (a closed internal relay)".into(),
        );
    }
    let Some((_, from_domain)) = sender.rsplit_once('@') else {
        return Authenticated::No(format!("{sender} has no domain"));
    };
    let from_domain = from_domain.to_ascii_lowercase();
    let region = match region(settings, &mail.trace) {
        Ok(region) => region,
        Err(why) => return Authenticated::No(why),
    };
    let method = match settings.require {
        Require::Dmarc => "dmarc",
        Require::Dkim => "dkim",
        Require::Spf => "spf",
        Require::None => "none",
    };
    let of_method = |headers: &[AuthResults]| -> Vec<(String, MethodResult)> {
        headers
            .iter()
            .flat_map(|h| {
                h.results
                    .iter()
                    .filter(|r| r.method == method)
                    .map(|r| (h.authserv_id.clone(), r.clone()))
            })
            .collect()
    };
    let all = of_method(&region.headers);
    if let Some(conflict) = conflict(settings.require, &all) {
        return Authenticated::No(format!(
            "the trusted Authentication-Results {} disagree: {conflict}",
            region.place
        ));
    }
    let deciding = of_method(region.headers.get(..region.deciding).unwrap_or_default());
    if let Some((id, r, how)) = deciding.iter().find_map(|(id, r)| {
        (r.result == "pass")
            .then(|| aligned(settings.require, r, &from_domain).map(|how| (id, r, how)))
            .flatten()
    }) {
        return Authenticated::Yes(format!("{}={} {how} ({id})", r.method, r.result));
    }
    let seen: Vec<String> = deciding
        .iter()
        .map(|(_, r)| format!("{}={}", r.method, r.result))
        .collect();
    Authenticated::No(if region.deciding == 0 {
        region.why_none
    } else if seen.is_empty() {
        format!(
            "the trusted MX's Authentication-Results {} record no {method} result",
            region.place
        )
    } else {
        format!(
            "the trusted MX's Authentication-Results {} say {} (needed: {method}=pass aligned with {from_domain})",
            region.place,
            seen.join(", ")
        )
    })
}

/// Why a pass counts, or `None` when it is not about the From domain.
fn aligned(require: Require, r: &MethodResult, from_domain: &str) -> Option<String> {
    match require {
        Require::Dmarc => r
            .property("header.from")
            .filter(|d| d.eq_ignore_ascii_case(from_domain))
            .map(|d| format!("header.from={d}")),
        Require::Dkim => {
            let d = dkim_domain(r)?;
            aligned_domain(d, from_domain).then(|| format!("header.d={d}"))
        }
        Require::Spf => {
            let from = r.property("smtp.mailfrom")?;
            let d = from.rsplit('@').next().unwrap_or(from);
            aligned_domain(d, from_domain).then(|| format!("smtp.mailfrom={from}"))
        }
        Require::None => None,
    }
}

fn dkim_domain(r: &MethodResult) -> Option<&str> {
    r.property("header.d").or_else(|| {
        r.property("header.i")
            .map(|i| i.rsplit('@').next().unwrap_or(i))
    })
}

/// Two results for the required method that cannot both be true: distinct
/// verdicts (`pass` and `fail`), or, for DMARC and SPF, which judge the
/// message once, verdicts about different domains. (DKIM judges each
/// signature, and a mail may carry several that pass.)
fn conflict(require: Require, results: &[(String, MethodResult)]) -> Option<String> {
    let describe = |r: &MethodResult| {
        let about = match require {
            Require::Dmarc => r.property("header.from"),
            Require::Spf => r.property("smtp.mailfrom"),
            _ => dkim_domain(r),
        };
        match about {
            // The value may come from a forged header: nothing of it may
            // reach a terminal as a control sequence.
            Some(d) => format!(
                "{}={} for {}",
                r.method,
                r.result,
                d.chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect::<String>()
            ),
            None => format!("{}={}", r.method, r.result),
        }
    };
    let (_, first) = results.first()?;
    let identity = |r: &MethodResult| -> Option<String> {
        match require {
            Require::Dmarc => r.property("header.from").map(str::to_ascii_lowercase),
            Require::Spf => r.property("smtp.mailfrom").map(|m| {
                m.rsplit('@')
                    .next()
                    .unwrap_or(m)
                    .trim()
                    .to_ascii_lowercase()
            }),
            _ => None,
        }
    };
    results.iter().skip(1).find_map(|(_, r)| {
        (r.result != first.result || identity(r) != identity(first))
            .then(|| format!("{} and {}", describe(first), describe(r)))
    })
}

/// The trusted Authentication-Results the layout lets count.
#[derive(Debug)]
struct Region {
    /// Trusted headers in the region, top first.
    headers: Vec<AuthResults>,
    /// How many of `headers`, from the top, may give the verdict: all of
    /// them `above`, the MX's own one `below`.
    deciding: usize,
    /// Why nothing may decide, when `deciding` is 0.
    why_none: String,
    /// "above mx.example.com's Received header", for reasons.
    place: String,
}

fn region(settings: &Authentication, trace: &[Trace]) -> Result<Region, String> {
    let ids = settings.authserv_id.join("/");
    let mx = settings.received_by.join("/");
    let position = settings.position();
    let (slice, place) = layout_slice(settings, trace, &mx)?;
    let (headers, first_is_trusted) = trusted_headers(settings, slice, &place)?;
    let (deciding, why_none) = match (position, first_is_trusted) {
        (_, None) => (0, format!("{mx} wrote no Authentication-Results {place}")),
        (Position::Above, Some(_)) if headers.is_empty() => {
            (0, format!("no Authentication-Results from {ids} {place}"))
        }
        (Position::Above, Some(_)) => (headers.len(), String::new()),
        (Position::Below, Some(false)) => (
            0,
            format!(
                "the first Authentication-Results {place} is not from {ids}; results further down came with the mail"
            ),
        ),
        (Position::Below, Some(true)) => (1, String::new()),
    };
    Ok(Region {
        headers,
        deciding,
        why_none,
        place,
    })
}

/// The part of `trace` the layout lets the MX (`mx`, for reasons) write
/// in, and where that is, in words.
fn layout_slice<'t>(
    settings: &Authentication,
    trace: &'t [Trace],
    mx: &str,
) -> Result<(&'t [Trace], String), String> {
    let is_mx = |by: &Option<String>| {
        by.as_deref().is_some_and(|by| {
            settings
                .received_by
                .iter()
                .any(|h| h.eq_ignore_ascii_case(by))
        })
    };
    let is_received = |t: &Trace| matches!(t, Trace::Received { .. });
    let Some(entry) = trace
        .iter()
        .position(|t| matches!(t, Trace::Received { by } if is_mx(by)))
    else {
        return Err(format!(
            "no Received header by {mx}: the mail did not come through the trusted MX"
        ));
    };
    Ok(match settings.position() {
        Position::Above => {
            let start = trace
                .get(..entry)
                .and_then(|above| above.iter().rposition(is_received))
                .map_or(0, |i| i + 1);
            (
                trace.get(start..entry).unwrap_or_default(),
                format!("above {mx}'s Received header (position: above)"),
            )
        }
        Position::Below => {
            let below = trace.get(entry + 1..).unwrap_or_default();
            let end = below.iter().position(is_received).unwrap_or(below.len());
            (
                below.get(..end).unwrap_or_default(),
                format!("directly below {mx}'s Received header (position: below)"),
            )
        }
    })
}

/// The Authentication-Results in `slice` from a trusted authserv-id, top
/// first, and whether the first one there was trusted (`None`: there was
/// none). A trusted one that is malformed spoils them all.
fn trusted_headers(
    settings: &Authentication,
    slice: &[Trace],
    place: &str,
) -> Result<(Vec<AuthResults>, Option<bool>), String> {
    let trusted = |id: &str| {
        settings
            .authserv_id
            .iter()
            .any(|t| t.eq_ignore_ascii_case(id))
    };
    let mut headers = Vec::new();
    let mut first_is_trusted = None;
    for value in slice.iter().filter_map(|t| match t {
        Trace::AuthResults(value) => Some(value),
        Trace::Received { .. } => None,
    }) {
        let parsed = authres::parse(value);
        let id = match &parsed {
            Ok(r) => Some(r.authserv_id.clone()),
            Err(e) => e.authserv_id.clone(),
        };
        let is_trusted = id.as_deref().is_some_and(trusted);
        first_is_trusted.get_or_insert(is_trusted);
        if !is_trusted {
            continue;
        }
        match parsed {
            Ok(r) => headers.push(r),
            Err(e) => {
                return Err(format!(
                    "an Authentication-Results header of {} {place} is malformed ({e}), so none of them is read",
                    id.unwrap_or_default()
                ));
            }
        }
    }
    Ok((headers, first_is_trusted))
}

/// Relaxed alignment: the same domain, or one a subdomain of the other.
fn aligned_domain(d: &str, from_domain: &str) -> bool {
    let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
    !d.is_empty()
        && (d == from_domain
            || from_domain.ends_with(&format!(".{d}"))
            || d.ends_with(&format!(".{from_domain}")))
}

/// Whether the sender may ask for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    Allowed(String),
    Denied(String),
}

impl Access {
    pub(crate) fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed(_))
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allowed(why) => write!(f, "allowed: {why}"),
            Self::Denied(why) => write!(f, "denied: {why}"),
        }
    }
}

/// What a request asks for, as far as the grants care.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Asked<'a> {
    /// The account the request is about (`targets`), when it names one.
    pub targets: Option<&'a str>,
    /// The fields it sets (`phrasebook::fields_set`).
    pub fields: &'a [String],
    /// What its phrasebook's `*self*` lets a user set for their own
    /// account; `None` when there is no `*self*`.
    pub self_service: Option<&'a [String]>,
}

/// Checks the grants for `sender` asking for `request_type`.
///
/// A `scope: any` grant allows the request as it is. A `scope: self` grant
/// allows it only when it names the sender's own account (`targets` is
/// their local part; a request naming no account is refused too, so no
/// playbook is ever started about nobody in particular), its phrasebook
/// has a `*self*` section, and every field it sets is listed there. A type
/// without `*self*` is for administrators only. `help` runs nothing, so no
/// scope restricts it.
pub(crate) fn access(
    grants: Option<&[Grant]>,
    request_type: &str,
    sender: &str,
    asked: Asked<'_>,
) -> Access {
    let Some(grants) = grants else {
        return Access::Denied(
            "this helpdesk accepts no requests yet: config.yaml has no access: grants".into(),
        );
    };
    let wants = |g: &Grant| g.requests.iter().any(|r| r == "*" || r == request_type);
    let from = |g: &Grant| g.senders.iter().any(|s| sender_matches(s, sender));
    let mut own_account_only = None;
    for (number, grant) in grants.iter().enumerate() {
        if !(wants(grant) && from(grant)) {
            continue;
        }
        match grant.scope {
            Scope::Any => return Access::Allowed(format!("grant {}", number + 1)),
            Scope::OwnAccount => own_account_only = own_account_only.or(Some(number + 1)),
        }
    }
    if request_type == HELP && !grants.iter().any(|g| g.requests.iter().any(|r| r == HELP)) {
        return Access::Allowed("help is open to every authenticated sender".into());
    }
    let Some(number) = own_account_only else {
        return Access::Denied(format!(
            "no access grant lets {sender} ask for {request_type}"
        ));
    };
    if request_type == HELP {
        return Access::Allowed(format!("grant {number} (help runs nothing)"));
    }
    let Some(self_service) = asked.self_service else {
        return Access::Denied(format!(
            "only an administrator may ask for {request_type} (grant {number} lets {sender} act only on their own account, and {request_type} is not self-service: its phrasebook has no *self* section)"
        ));
    };
    let local = sender.rsplit_once('@').map_or(sender, |(l, _)| l);
    match asked.targets {
        None => {
            return Access::Denied(format!(
                "grant {number} lets {sender} act only on their own account ({local}), and the request names no account: write \"my\" or your user name after the label"
            ));
        }
        Some(t) if !t.eq_ignore_ascii_case(local) => {
            return Access::Denied(format!(
                "grant {number} lets {sender} act only on their own account ({local}), and the request names another"
            ));
        }
        Some(_) => {}
    }
    let refused: Vec<&str> = asked
        .fields
        .iter()
        .filter(|f| !self_service.contains(f))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        return Access::Allowed(format!("grant {number} (scope: self)"));
    }
    Access::Denied(format!(
        "{}: you may not set {} for your own account; ask an administrator (grant {number} has scope: self)",
        refused.join(", "),
        if refused.len() == 1 { "this" } else { "these" }
    ))
}

/// The mailbox an address delivers to, as one person: lower-case, and
/// without a `+tag` subaddress (`Alice+ops@Example.com` is
/// `alice@example.com`), so that nobody counts as someone else, or twice,
/// by tagging their address (approvals' two-person rule).
pub(crate) fn mailbox(address: &str) -> String {
    let address = address.trim().to_lowercase();
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{local}@{domain}")
        }
        None => address,
    }
}

pub(crate) fn sender_matches(pattern: &str, sender: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(domain) = pattern.strip_prefix("*@") {
        return sender
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain));
    }
    pattern.eq_ignore_ascii_case(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail;

    #[test]
    fn a_mailbox_is_one_person_whatever_the_case_or_tag() {
        for same in [
            "alice@example.com",
            "Alice@Example.COM",
            "alice+ops@example.com",
            "ALICE+x+y@example.com",
            " alice@example.com ",
        ] {
            assert_eq!(mailbox(same), "alice@example.com", "{same}");
        }
        assert_ne!(mailbox("alicex@example.com"), mailbox("alice@example.com"));
        assert_ne!(mailbox("alice@example.org"), mailbox("alice@example.com"));
    }

    fn settings(require: Require) -> Authentication {
        Authentication {
            authserv_id: vec!["mx.example.com".into()],
            received_by: vec!["mx.example.com".into()],
            require,
            position: None,
        }
    }

    fn check(headers: &str, require: Require) -> Authenticated {
        let raw =
            format!("{headers}From: Alice <alice@example.com>\r\nSubject: quota\r\n\r\nhi\r\n");
        authenticate(
            Some(&settings(require)),
            &mail::read(raw.as_bytes(), "From"),
        )
    }

    const MX: &str = "Received: from out.example.net (out.example.net [192.0.2.1]) by mx.example.com (Postfix) with ESMTPS id 1; Sun, 22 Nov 2026 09:00:00 +0000\r\n";

    #[test]
    fn postfix_with_opendmarc_above_its_received() {
        let pass = format!(
            "Authentication-Results: mx.example.com; dmarc=pass (p=reject) header.from=example.com\r\n{MX}"
        );
        assert!(
            check(&pass, Require::Dmarc).is_yes(),
            "{}",
            check(&pass, Require::Dmarc)
        );
        let fail = format!(
            "Authentication-Results: mx.example.com; dmarc=fail header.from=example.com\r\n{MX}"
        );
        assert!(!check(&fail, Require::Dmarc).is_yes());
        let other_domain = format!(
            "Authentication-Results: mx.example.com; dmarc=pass header.from=evil.example\r\n{MX}"
        );
        assert!(!check(&other_domain, Require::Dmarc).is_yes());
    }

    #[test]
    fn gmail_layout_below_its_received() {
        let gmail = Authentication {
            authserv_id: vec!["mx.google.com".into()],
            received_by: vec!["mx.google.com".into()],
            require: Require::Dmarc,
            position: Some(Position::Below),
        };
        let raw = "Delivered-To: me@gmail.com\r\nReceived: by 2002:a05:6a10:1::1 with SMTP id x;\r\n Sun, 22 Nov 2026 09:00:01 -0800 (PST)\r\nReturn-Path: <alice@example.com>\r\nReceived: from mail.example.com (mail.example.com. [192.0.2.1])\r\n        by mx.google.com with ESMTPS id y\r\n        for <me@gmail.com>;\r\n        Sun, 22 Nov 2026 09:00:00 -0800 (PST)\r\nReceived-SPF: pass (google.com: domain of alice@example.com designates 192.0.2.1 as permitted sender) client-ip=192.0.2.1;\r\nAuthentication-Results: mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=abc;\r\n       spf=pass (google.com: domain of alice@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=alice@example.com;\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com\r\nReceived: from laptop by mail.example.com; Sun, 22 Nov 2026 08:59:59 -0800\r\nFrom: Alice <alice@example.com>\r\nSubject: quota\r\n\r\nhi\r\n";
        let mail = mail::read(raw.as_bytes(), "From");
        assert!(
            authenticate(Some(&gmail), &mail).is_yes(),
            "{}",
            authenticate(Some(&gmail), &mail)
        );
        for require in [Require::Dkim, Require::Spf] {
            let s = Authentication {
                require,
                ..gmail.clone()
            };
            assert!(authenticate(Some(&s), &mail).is_yes(), "{require:?}");
        }
    }

    #[test]
    fn forged_results_lower_down_are_ignored() {
        // The genuine MX result (fail) is on top; the sender's forged pass is below.
        let forged = format!(
            "Authentication-Results: mx.example.com; dmarc=fail header.from=example.com\r\n{MX}Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"
        );
        assert!(!check(&forged, Require::Dmarc).is_yes());
        // Only a forged pass below the MX's Received, the MX wrote nothing:
        // below the next Received it does not count.
        let forged = format!(
            "{MX}Received: from attacker by out.example.net; Sun, 22 Nov 2026 08:00:00 +0000\r\nAuthentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"
        );
        assert!(!check(&forged, Require::Dmarc).is_yes());
        // No Received by the trusted MX at all: the mail did not pass it.
        let bypass = "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\nReceived: from x by backup-mx.example.com; Sun, 22 Nov 2026 08:00:00 +0000\r\n";
        assert!(!check(bypass, Require::Dmarc).is_yes());
        // An untrusted authserv-id never counts.
        let untrusted = format!(
            "Authentication-Results: mx.evil.example; dmarc=pass header.from=example.com\r\n{MX}"
        );
        assert!(!check(&untrusted, Require::Dmarc).is_yes());
        assert!(!check("", Require::Dmarc).is_yes());
    }

    #[test]
    fn dkim_and_spf_need_alignment() {
        let dkim = format!(
            "Authentication-Results: mx.example.com; dkim=pass header.d=mail.example.com\r\n{MX}"
        );
        assert!(check(&dkim, Require::Dkim).is_yes());
        let dkim = format!(
            "Authentication-Results: mx.example.com; dkim=pass header.d=example.com.evil\r\n{MX}"
        );
        assert!(!check(&dkim, Require::Dkim).is_yes());
        let spf = format!(
            "Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=bounce@sendgrid.net\r\n{MX}"
        );
        assert!(!check(&spf, Require::Spf).is_yes());
    }

    /// A mail whose header block is `headers` (top first), judged with
    /// `require: dmarc` in `position`.
    fn judged(headers: &[String], position: Position, require: Require) -> Authenticated {
        let raw = format!(
            "{}From: Alice <alice@example.com>\r\nSubject: quota\r\n\r\nhi\r\n",
            headers.concat()
        );
        let settings = Authentication {
            position: Some(position),
            ..settings(require)
        };
        authenticate(Some(&settings), &mail::read(raw.as_bytes(), "From"))
    }

    fn ar(text: &str) -> String {
        format!("Authentication-Results: {text}\r\n")
    }

    const PASS: &str = "mx.example.com; dmarc=pass header.from=example.com";
    const FAIL: &str = "mx.example.com; dmarc=fail header.from=example.com";
    /// A newer hop after the MX (a mailbox server, fdm).
    const NEWER: &str = "Received: from mx.example.com by mailbox.example.com with LMTP; Sun, 22 Nov 2026 09:00:01 +0000\r\n";
    /// A hop the sender's side added (or forged) before the MX.
    const OLDER: &str =
        "Received: from laptop by out.example.net; Sun, 22 Nov 2026 08:59:00 +0000\r\n";

    fn yes(headers: &[String], position: Position) {
        let verdict = judged(headers, position, Require::Dmarc);
        assert!(verdict.is_yes(), "{position:?} {headers:?}: {verdict}");
    }

    fn no(headers: &[String], position: Position, why: &str) -> String {
        let verdict = judged(headers, position, Require::Dmarc);
        let text = verdict.to_string();
        assert!(!verdict.is_yes(), "{position:?} {headers:?}: {text}");
        assert!(text.contains(why), "{position:?} {headers:?}: {text}");
        text
    }

    #[test]
    fn above_counts_only_results_above_the_mx_received() {
        let (mx, above) = (MX.to_owned(), Position::Above);
        yes(&[ar(PASS), mx.clone()], above);
        yes(&[NEWER.into(), ar(PASS), mx.clone(), OLDER.into()], above);
        // The hole of issue 11: the MX wrote nothing, the sender's pass
        // sits right below its Received.
        no(&[mx.clone(), ar(PASS)], above, "no Authentication-Results");
        no(
            &[mx.clone(), ar(PASS), OLDER.into()],
            above,
            "no Authentication-Results",
        );
        // A genuine fail above, a forged pass below.
        no(&[ar(FAIL), mx.clone(), ar(PASS)], above, "dmarc=fail");
        // A fake "Received: by mx" further down does not move the region
        // into the sender's headers: the topmost one is the entry.
        no(
            &[mx.clone(), ar(PASS), mx.clone()],
            above,
            "no Authentication-Results",
        );
        no(
            &[ar(FAIL), mx.clone(), ar(PASS), mx.clone()],
            above,
            "dmarc=fail",
        );
        // Above a newer hop is not the MX's region.
        no(
            &[ar(PASS), NEWER.into(), mx.clone()],
            above,
            "no Authentication-Results",
        );
        // Several milters each write one header: all are the MX's own.
        yes(
            &[
                ar(PASS),
                ar("mx.example.com; dkim=pass header.d=example.com"),
                mx.clone(),
            ],
            above,
        );
        let dkim = judged(
            &[
                ar(PASS),
                ar("mx.example.com; dkim=pass header.d=example.com"),
                mx,
            ],
            above,
            Require::Dkim,
        );
        assert!(dkim.is_yes(), "{dkim}");
    }

    #[test]
    fn below_counts_only_the_first_header_under_the_mx_received() {
        let (mx, below) = (MX.to_owned(), Position::Below);
        yes(&[mx.clone(), ar(PASS)], below);
        yes(&[NEWER.into(), mx.clone(), ar(PASS), OLDER.into()], below);
        // A forged pass below the next Received never counts.
        yes(&[mx.clone(), ar(PASS), OLDER.into(), ar(FAIL)], below);
        no(
            &[mx.clone(), ar(FAIL), OLDER.into(), ar(PASS)],
            below,
            "dmarc=fail",
        );
        // A forged pass right under the MX's own fail: they disagree.
        no(&[mx.clone(), ar(FAIL), ar(PASS)], below, "disagree");
        // The MX recorded no DMARC result; a forged one below it does not
        // stand in for it.
        no(
            &[
                mx.clone(),
                ar("mx.example.com; spf=pass smtp.mailfrom=alice@example.com"),
                ar(PASS),
            ],
            below,
            "record no dmarc result",
        );
        // Results above the MX's Received are not where it writes them.
        no(
            &[ar(PASS), mx.clone()],
            below,
            "wrote no Authentication-Results",
        );
        // The first header under the MX's Received is someone else's.
        no(
            &[
                mx.clone(),
                ar("mx.evil.example; dmarc=pass header.from=example.com"),
                ar(PASS),
            ],
            below,
            "is not from mx.example.com",
        );
        // A fake "Received: by mx" lower down changes nothing.
        no(
            &[mx.clone(), ar(FAIL), mx.clone(), ar(PASS)],
            below,
            "dmarc=fail",
        );
    }

    /// Every way the trusted results for the required method can disagree,
    /// in one header or in several, in both layouts.
    #[test]
    fn conflicting_results_are_not_authenticated() {
        let conflicts = [
            // several results of the method in one header
            vec![ar(
                "mx.example.com; dmarc=pass header.from=example.com; dmarc=fail header.from=example.com",
            )],
            vec![ar(
                "mx.example.com; dmarc=fail header.from=example.com; dmarc=pass header.from=example.com",
            )],
            // a pass for the From domain, a pass for another
            vec![ar(
                "mx.example.com; dmarc=pass header.from=example.com; dmarc=pass header.from=evil.example",
            )],
            // a pass for another domain plus a fail
            vec![ar(
                "mx.example.com; dmarc=pass header.from=evil.example; dmarc=fail header.from=example.com",
            )],
            // several headers of the region
            vec![ar(PASS), ar(FAIL)],
            vec![ar(FAIL), ar(PASS)],
            vec![
                ar(PASS),
                ar("mx.example.com; dmarc=none header.from=example.com"),
            ],
        ];
        for headers in &conflicts {
            for position in [Position::Above, Position::Below] {
                let mut all = headers.clone();
                match position {
                    Position::Above => all.push(MX.into()),
                    Position::Below => all.insert(0, MX.into()),
                }
                no(&all, position, "disagree");
            }
        }
        // DKIM judges each signature: two passing signatures are no
        // conflict, a failing one next to the pass is.
        let two =
            ar("mx.example.com; dkim=pass header.d=example.com; dkim=pass header.d=esp.example");
        assert!(judged(&[two, MX.into()], Position::Above, Require::Dkim).is_yes());
        let mixed =
            ar("mx.example.com; dkim=pass header.d=example.com; dkim=fail header.d=esp.example");
        let verdict = judged(&[mixed, MX.into()], Position::Above, Require::Dkim);
        assert!(!verdict.is_yes(), "{verdict}");
        // An untrusted authserv-id's opinion is no conflict.
        yes(
            &[
                ar(PASS),
                ar("mx.evil.example; dmarc=fail header.from=example.com"),
                MX.into(),
            ],
            Position::Above,
        );
    }

    #[test]
    fn quoted_pair_confusion_is_not_authenticated() {
        let confused = ar(
            r#"mx.example.com; dmarc=fail header.from="x\";dmarc=pass header.from=example.com""#,
        );
        no(
            &[confused.clone(), MX.into()],
            Position::Above,
            "dmarc=fail",
        );
        no(&[MX.into(), confused], Position::Below, "dmarc=fail");
        // A trusted header in the region that does not parse.
        let broken = ar(r#"mx.example.com; dmarc=pass header.from="example.com"#);
        no(&[broken.clone(), MX.into()], Position::Above, "malformed");
        no(&[MX.into(), broken], Position::Below, "malformed");
        // An untrusted one that does not parse is ignored.
        yes(
            &[ar("mx.evil.example; ((("), ar(PASS), MX.into()],
            Position::Above,
        );
    }

    #[test]
    fn one_sender_unambiguous() {
        let pass = format!("{}{MX}", ar(PASS));
        let judge = |from_lines: &str, header: &str| {
            let raw = format!("{pass}{from_lines}Subject: quota\r\n\r\nhi\r\n");
            authenticate(
                Some(&settings(Require::Dmarc)),
                &mail::read(raw.as_bytes(), header),
            )
        };
        let cases = [
            (
                "From: alice@example.com\r\nFrom: mallory@evil.example\r\n",
                "From",
                "2 From headers",
            ),
            (
                "From: mallory@evil.example\r\nFrom: alice@example.com\r\n",
                "From",
                "2 From headers",
            ),
            (
                "From: alice@example.com, mallory@evil.example\r\n",
                "From",
                "holds 2 addresses",
            ),
            (
                "From: alice@example.com, Alice <alice@example.com>\r\n",
                "From",
                "holds 2 addresses",
            ),
            (
                "From: Team: alice@example.com, mallory@evil.example;\r\n",
                "From",
                "is a group",
            ),
            ("From: Team: alice@example.com;\r\n", "From", "is a group"),
            ("Sender: alice@example.com\r\n", "From", "no From header"),
            (
                "From: list@example.com\r\nX-Original-Sender: alice@example.com\r\nX-Original-Sender: mallory@example.com\r\n",
                "X-Original-Sender",
                "2 X-Original-Sender headers",
            ),
            (
                "From: list@example.com\r\nFrom: other@example.com\r\nX-Original-Sender: alice@example.com\r\n",
                "X-Original-Sender",
                "2 From headers",
            ),
        ];
        for (lines, header, why) in cases {
            let verdict = judge(lines, header);
            assert!(!verdict.is_yes(), "{lines:?}: {verdict}");
            assert!(verdict.to_string().contains(why), "{lines:?}: {verdict}");
        }
        assert!(judge("From: Alice <alice@example.com>\r\n", "From").is_yes());
        assert!(
            judge(
                "From: list@example.com\r\nX-Original-Sender: alice@example.com\r\n",
                "X-Original-Sender"
            )
            .is_yes()
        );
    }

    fn grants(yaml_like: &[(&[&str], &[&str], Scope)]) -> Vec<Grant> {
        yaml_like
            .iter()
            .map(|(r, s, scope)| Grant {
                requests: r.iter().map(|x| x.to_string()).collect(),
                senders: s.iter().map(|x| x.to_string()).collect(),
                scope: *scope,
            })
            .collect()
    }

    /// A request naming `targets`, setting nothing, of a self-service type.
    fn bare(targets: Option<&str>) -> Asked<'_> {
        Asked {
            targets,
            fields: &[],
            self_service: Some(&[]),
        }
    }

    #[test]
    fn grants_default_deny() {
        let g = grants(&[
            (&["*"], &["*@example.com"], Scope::OwnAccount),
            (&["manage_users"], &["admin@example.com"], Scope::Any),
        ]);
        let g = Some(g.as_slice());
        assert!(access(g, "storage", "alice@example.com", bare(Some("alice"))).is_allowed());
        assert!(access(g, "storage", "alice@EXAMPLE.com", bare(Some("Alice"))).is_allowed());
        assert!(!access(g, "storage", "alice@example.com", bare(Some("bob"))).is_allowed());
        assert!(!access(g, "storage", "mallory@evil.example", bare(Some("mallory"))).is_allowed());
        assert!(access(g, "manage_users", "admin@example.com", bare(Some("bob"))).is_allowed());
        assert!(!access(g, "manage_users", "alice@example.com", bare(Some("bob"))).is_allowed());
        assert!(access(g, HELP, "anyone@evil.example", bare(None)).is_allowed());
        assert!(!access(None, "storage", "alice@example.com", bare(None)).is_allowed());
        let only_staff_help = grants(&[(&["help"], &["*@example.com"], Scope::Any)]);
        assert!(
            !access(
                Some(&only_staff_help),
                HELP,
                "anyone@evil.example",
                bare(None)
            )
            .is_allowed()
        );
    }

    #[test]
    fn scope_self_allows_only_what_star_self_lists() {
        let g = grants(&[
            (&["*"], &["*@example.com"], Scope::OwnAccount),
            (&["*"], &["admin@example.com"], Scope::Any),
        ]);
        let g = Some(g.as_slice());
        let allowed = ["password".to_owned(), "reset".to_owned()];
        let ask = |fields: &'static [&'static str]| -> Vec<String> {
            fields.iter().map(|f| (*f).to_owned()).collect()
        };
        let verdict =
            |sender: &str, targets: Option<&str>, fields: &[String], book: Option<&[String]>| {
                access(
                    g,
                    "manage_account",
                    sender,
                    Asked {
                        targets,
                        fields,
                        self_service: book,
                    },
                )
            };
        let fine = ask(&["password", "reset"]);
        assert!(verdict("alice@example.com", Some("alice"), &fine, Some(&allowed)).is_allowed());
        // Every field outside *self*, alone or with allowed ones, is named.
        for extra in [
            "group",
            "new_username",
            "unlock",
            "shell",
            "modifiers",
            "amount",
        ] {
            let mut fields = fine.clone();
            fields.push(extra.to_owned());
            let got = verdict("alice@example.com", Some("alice"), &fields, Some(&allowed));
            assert_eq!(
                got,
                Access::Denied(format!(
                    "{extra}: you may not set this for your own account; ask an administrator (grant 1 has scope: self)"
                )),
            );
        }
        let got = verdict(
            "alice@example.com",
            Some("alice"),
            &ask(&["group", "leave", "password"]),
            Some(&allowed),
        );
        assert!(
            got.to_string()
                .starts_with("denied: group, leave: you may not set these"),
            "{got}"
        );
        // No *self*: the type is for administrators only, even bare.
        let got = verdict("alice@example.com", Some("alice"), &[], None);
        assert!(
            got.to_string()
                .contains("only an administrator may ask for manage_account"),
            "{got}"
        );
        // Under scope: self the request must name the sender's account.
        let got = verdict("alice@example.com", None, &fine, Some(&allowed));
        assert!(got.to_string().contains("names no account"), "{got}");
        assert!(!verdict("alice@example.com", Some("bob"), &fine, Some(&allowed)).is_allowed());
        // scope: any is unaffected, whatever the fields and the phrasebook.
        let all = ask(&["group", "new_username", "unlock", "shell"]);
        assert!(verdict("admin@example.com", Some("bob"), &all, None).is_allowed());
        assert!(verdict("admin@example.com", None, &all, Some(&allowed)).is_allowed());
        // help runs nothing: a scope: self grant naming it does not restrict it.
        let help_self = grants(&[(&["help"], &["*@example.com"], Scope::OwnAccount)]);
        let asked = Asked {
            targets: Some("storage"),
            fields: &[],
            self_service: None,
        };
        assert!(access(Some(&help_self), HELP, "alice@example.com", asked).is_allowed());
    }
}
