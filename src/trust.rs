//! Trust: does the mail prove its From address, and may that sender ask for
//! this request?
//!
//! Authentication reads only `Authentication-Results` headers (RFC 8601)
//! written by a trusted authserv-id, and only the newest one the trusted MX
//! added when the message entered it: the region above the lowest
//! `Received: ... by <trusted MX>` header, down to the next `Received`.
//! Headers are prepended on every hop, so a forged result the sender put in
//! the message sits below the MX's own; the topmost trusted one wins. No
//! such `Received` header means the mail never passed the trusted MX.
//!
//! Access is default deny: a list of grants (request types × senders,
//! optionally only for the sender's own account).

use std::fmt;

use crate::authres;
use crate::config::{Authentication, Grant, Require, Scope};
use crate::desk::HELP;
use crate::mail::{Mail, Trace};

/// Whether the From address is proven, and how or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    Yes(String),
    No(String),
}

impl Authenticated {
    pub fn is_yes(&self) -> bool {
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

pub fn authenticate(settings: Option<&Authentication>, mail: &Mail) -> Authenticated {
    let Some(settings) = settings else {
        return Authenticated::No(
            "config.yaml has no authentication: section, so no sender is trusted (see config.example.yaml)".into(),
        );
    };
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

    let Some(results) = trusted_results(settings, &mail.trace) else {
        return Authenticated::No(format!(
            "no Received header by {} and Authentication-Results from {} at the top of the mail: it did not come through the trusted MX",
            settings.received_by.join("/"),
            settings.authserv_id.join("/")
        ));
    };
    let method = match settings.require {
        Require::Dmarc => "dmarc",
        Require::Dkim => "dkim",
        Require::Spf => "spf",
        Require::None => "none",
    };
    let verdicts: Vec<&authres::MethodResult> = results
        .results
        .iter()
        .filter(|r| r.method == method)
        .collect();
    let aligned = |r: &authres::MethodResult| -> Option<String> {
        match settings.require {
            Require::Dmarc => r
                .property("header.from")
                .filter(|d| d.eq_ignore_ascii_case(&from_domain))
                .map(|d| format!("header.from={d}")),
            Require::Dkim => {
                let d = r.property("header.d").or_else(|| {
                    r.property("header.i")
                        .map(|i| i.rsplit('@').next().unwrap_or(i))
                })?;
                aligned_domain(d, &from_domain).then(|| format!("header.d={d}"))
            }
            Require::Spf => {
                let from = r.property("smtp.mailfrom")?;
                let d = from.rsplit('@').next().unwrap_or(from);
                aligned_domain(d, &from_domain).then(|| format!("smtp.mailfrom={from}"))
            }
            Require::None => None,
        }
    };
    if let Some((r, how)) = verdicts.iter().find_map(|r| {
        (r.result == "pass")
            .then(|| aligned(r).map(|how| (r, how)))
            .flatten()
    }) {
        return Authenticated::Yes(format!(
            "{}={} {how} ({})",
            r.method, r.result, results.authserv_id
        ));
    }
    let seen: Vec<String> = verdicts
        .iter()
        .map(|r| format!("{}={}", r.method, r.result))
        .collect();
    Authenticated::No(if seen.is_empty() {
        format!("{} recorded no {method} result", results.authserv_id)
    } else {
        format!(
            "{} says {} (needed: {method}=pass aligned with {from_domain})",
            results.authserv_id,
            seen.join(", ")
        )
    })
}

/// The topmost Authentication-Results with a trusted authserv-id inside
/// the trusted MX's region (see the module comment).
fn trusted_results(settings: &Authentication, trace: &[Trace]) -> Option<authres::AuthResults> {
    let is_mx = |by: &Option<String>| {
        by.as_deref().is_some_and(|by| {
            settings
                .received_by
                .iter()
                .any(|h| h.eq_ignore_ascii_case(by))
        })
    };
    let entry = trace
        .iter()
        .rposition(|t| matches!(t, Trace::Received { by } if is_mx(by)))?;
    let end = trace
        .iter()
        .skip(entry + 1)
        .position(|t| matches!(t, Trace::Received { .. }))
        .map_or(trace.len(), |offset| entry + 1 + offset);
    trace.get(..end)?.iter().find_map(|t| match t {
        Trace::AuthResults(value) => authres::parse(value).filter(|r| {
            settings
                .authserv_id
                .iter()
                .any(|id| id.eq_ignore_ascii_case(&r.authserv_id))
        }),
        Trace::Received { .. } => None,
    })
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
pub enum Access {
    Allowed(String),
    Denied(String),
}

impl Access {
    pub fn is_allowed(&self) -> bool {
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
pub struct Asked<'a> {
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
pub fn access(
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

fn sender_matches(pattern: &str, sender: &str) -> bool {
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

    fn settings(require: Require) -> Authentication {
        Authentication {
            authserv_id: vec!["mx.example.com".into()],
            received_by: vec!["mx.example.com".into()],
            require,
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
