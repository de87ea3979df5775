//! When never to answer: mail loops and backscatter.
//!
//! The rules are those of RFC 3834 and of Dovecot's vacation (Pigeonhole):
//! no automatic reply to automatic mail, to lists, to bulk mail, to
//! bounces, or to robot addresses. Our own `X-Loop` mark and
//! `Auto-Submitted` mail are dropped altogether: acting on a robot's mail
//! is an automatic response too, and an out-of-office answer to one of our
//! replies must not run a playbook.

use std::fmt;

use crate::mail::Mail;

/// Why a mail gets no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Silence {
    OwnLoop,
    AutoSubmitted(String),
    Precedence(String),
    List(String),
    AutoResponseSuppress(String),
    NullReturnPath,
    NoSender,
    RobotSender(String),
}

impl Silence {
    /// Dropped: not acted upon at all, not only left unanswered.
    pub(crate) fn drops_request(&self) -> bool {
        matches!(self, Self::OwnLoop | Self::AutoSubmitted(_))
    }
}

impl fmt::Display for Silence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnLoop => write!(f, "it carries our own X-Loop header (a mail loop)"),
            Self::AutoSubmitted(v) => write!(f, "it is automatic mail (Auto-Submitted: {v})"),
            Self::Precedence(v) => write!(f, "it is bulk or list mail (Precedence: {v})"),
            Self::List(h) => write!(f, "it came through a mailing list ({h} header)"),
            Self::AutoResponseSuppress(v) => {
                write!(
                    f,
                    "the sender asked for no automatic replies (X-Auto-Response-Suppress: {v})"
                )
            }
            Self::NullReturnPath => write!(f, "it is a bounce (empty Return-Path)"),
            Self::NoSender => write!(f, "it has no usable sender address"),
            Self::RobotSender(a) => write!(f, "the sender {a} is a robot or list address"),
        }
    }
}

/// The first reason not to answer `mail`, if any. `own_address` is the
/// helpdesk's address, which is what our replies put in X-Loop.
pub(crate) fn silence(mail: &Mail, own_address: Option<&str>) -> Option<Silence> {
    let m = &mail.markers;
    if let Some(own) = own_address
        && m.x_loop.iter().any(|v| v.eq_ignore_ascii_case(own))
    {
        return Some(Silence::OwnLoop);
    }
    if let Some(value) = &m.auto_submitted {
        let keyword = value.split(';').next().unwrap_or_default().trim();
        if !keyword.eq_ignore_ascii_case("no") {
            return Some(Silence::AutoSubmitted(value.clone()));
        }
    }
    if let Some(value) = &m.precedence
        && ["bulk", "junk", "list"]
            .iter()
            .any(|p| value.trim().eq_ignore_ascii_case(p))
    {
        return Some(Silence::Precedence(value.clone()));
    }
    if let Some(header) = &m.list_header {
        return Some(Silence::List(header.clone()));
    }
    if let Some(value) = &m.auto_response_suppress
        && value
            .split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("all") || v.trim().eq_ignore_ascii_case("oof"))
    {
        return Some(Silence::AutoResponseSuppress(value.clone()));
    }
    if let Some(path) = &m.return_path
        && path
            .trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace())
            .is_empty()
    {
        return Some(Silence::NullReturnPath);
    }
    let Some(sender) = mail.sender.as_deref() else {
        return Some(Silence::NoSender);
    };
    robot(sender).then(|| Silence::RobotSender(sender.to_owned()))
}

/// MAILER-DAEMON, postmaster, noreply, list -request and owner- addresses.
fn robot(address: &str) -> bool {
    let local = address
        .rsplit_once('@')
        .map_or(address, |(l, _)| l)
        .to_ascii_lowercase();
    let squeezed: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    ["mailerdaemon", "postmaster", "noreply", "donotreply"].contains(&squeezed.as_str())
        || squeezed.starts_with("noreply")
        || squeezed.starts_with("donotreply")
        || local.ends_with("-request")
        || local.starts_with("owner-")
        || local.ends_with("-bounces")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail;

    fn check(headers: &str, from: &str) -> Option<Silence> {
        let raw = format!("From: {from}\r\n{headers}Subject: quota\r\n\r\nhi\r\n");
        silence(
            &mail::read(raw.as_bytes(), "From"),
            Some("helpdesk@example.com"),
        )
    }

    #[test]
    fn each_rule() {
        let a = "alice@example.com";
        assert_eq!(check("", a), None);
        assert_eq!(check("Auto-Submitted: no\r\n", a), None);
        assert_eq!(
            check("X-Loop: HelpDesk@example.com\r\n", a),
            Some(Silence::OwnLoop)
        );
        assert_eq!(check("X-Loop: other@example.org\r\n", a), None);
        assert!(matches!(
            check("Auto-Submitted: auto-replied\r\n", a),
            Some(Silence::AutoSubmitted(_))
        ));
        assert!(matches!(
            check("Auto-Submitted: auto-generated; owner-email=x\r\n", a),
            Some(Silence::AutoSubmitted(_))
        ));
        for p in ["bulk", "junk", "list", "Bulk"] {
            assert!(
                matches!(
                    check(&format!("Precedence: {p}\r\n"), a),
                    Some(Silence::Precedence(_))
                ),
                "{p}"
            );
        }
        assert_eq!(check("Precedence: first-class\r\n", a), None);
        assert!(matches!(
            check("List-Unsubscribe: <mailto:x@example.com>\r\n", a),
            Some(Silence::List(_))
        ));
        assert!(matches!(
            check("X-Auto-Response-Suppress: DR, OOF\r\n", a),
            Some(Silence::AutoResponseSuppress(_))
        ));
        assert!(matches!(
            check("X-Auto-Response-Suppress: All\r\n", a),
            Some(Silence::AutoResponseSuppress(_))
        ));
        assert_eq!(check("X-Auto-Response-Suppress: DR\r\n", a), None);
        assert_eq!(
            check("Return-Path: <>\r\n", a),
            Some(Silence::NullReturnPath)
        );
        assert_eq!(check("Return-Path: <alice@example.com>\r\n", a), None);
        for robot in [
            "MAILER-DAEMON@example.com",
            "postmaster@example.com",
            "noreply@example.com",
            "no-reply@example.com",
            "no_reply.billing@example.com",
            "do-not-reply@example.com",
            "users-request@lists.example.com",
            "owner-users@lists.example.com",
        ] {
            assert!(
                matches!(check("", robot), Some(Silence::RobotSender(_))),
                "{robot}"
            );
        }
        assert_eq!(check("", "norma@example.com"), None);
        assert_eq!(check("", "not an address"), Some(Silence::NoSender));
    }

    #[test]
    fn only_loops_and_robots_mail_is_dropped() {
        assert!(Silence::OwnLoop.drops_request());
        assert!(Silence::AutoSubmitted("auto-replied".into()).drops_request());
        assert!(!Silence::List("List-Id".into()).drops_request());
        assert!(!Silence::NullReturnPath.drops_request());
    }
}
