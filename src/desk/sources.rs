//! `sources:` the mailboxes `helpdesk fetch` reads (IMAP, or a Maildir),
//! validated: names, URLs, TLS, where handled mail goes. A password never
//! sits in config.yaml (a 0600 file, or an environment variable).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::desk::config::{PasswordSource, duration, normalize};

/// One mailbox `fetch` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    /// Lower-case letters, digits, `-` and `_`: it names the source in the
    /// journal (`intake`), the log and the metrics.
    pub name: String,
    pub kind: SourceKind,
    /// A source unreachable for longer than this is logged as an error,
    /// once (before: warnings).
    pub alert_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Imap(Imap),
    /// A Maildir: `new/` is read; handled mail moves to `cur/` with the
    /// seen flag (and the flagged flag when it was quarantined).
    Maildir(PathBuf),
}

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImapTls {
    /// `imaps://`: TLS from the first byte (port 993).
    Implicit,
    /// `imap://` with STARTTLS (port 143), the default for `imap://`.
    Starttls,
    /// `imap://` with `starttls: false`: only to a loopback address.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Imap {
    pub host: String,
    pub port: u16,
    pub tls: ImapTls,
    /// The mailbox read, from the URL's path (`INBOX` when it has none).
    pub mailbox: String,
    pub username: String,
    pub password: PasswordSource,
    pub ca_file: Option<PathBuf>,
    /// For connecting, logging in and each command.
    pub timeout: Duration,
    /// How often to look again when the server has no IDLE (and how long
    /// one IDLE lasts at most when it has).
    pub poll_interval: Duration,
    /// Where handled mail goes, and quarantined mail; `/` separates
    /// levels whatever the server's own separator.
    pub done: String,
    pub failed: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    name: String,
    imap: Option<RawImap>,
    maildir: Option<PathBuf>,
    done: Option<String>,
    failed: Option<String>,
    alert_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    url: String,
    username: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    starttls: Option<bool>,
    timeout: Option<String>,
    poll_interval: Option<String>,
}

const DEFAULT_DONE: &str = "Helpdesk/Done";
const DEFAULT_FAILED: &str = "Helpdesk/Failed";
const DEFAULT_ALERT_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_NAME: usize = 40;

/// Validates `sources:`; relative paths resolve against `base`.
pub(crate) fn sources(raw: Vec<RawSource>, base: &Path) -> Result<Vec<Source>, String> {
    let mut sources: Vec<Source> = Vec::with_capacity(raw.len());
    for (number, source) in raw.into_iter().enumerate() {
        let at = format!("sources[{}] ({:?})", number + 1, source.name);
        let source = one(source, base).map_err(|e| format!("{at}: {e}"))?;
        if sources.iter().any(|s| s.name == source.name) {
            return Err(format!(
                "{at}: another source has this name: names must differ"
            ));
        }
        sources.push(source);
    }
    Ok(sources)
}

fn one(raw: RawSource, base: &Path) -> Result<Source, String> {
    if raw.name.is_empty()
        || raw.name.len() > MAX_NAME
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "name: use up to {MAX_NAME} lower-case letters, digits, - and _"
        ));
    }
    let alert_after = duration("alert_after", raw.alert_after, DEFAULT_ALERT_AFTER)?;
    let kind = match (raw.imap, raw.maildir) {
        (Some(imap), None) => SourceKind::Imap(self::imap(
            imap,
            base,
            raw.done.unwrap_or_else(|| DEFAULT_DONE.into()),
            raw.failed.unwrap_or_else(|| DEFAULT_FAILED.into()),
        )?),
        (None, Some(path)) => {
            if raw.done.is_some() || raw.failed.is_some() {
                return Err("done and failed are IMAP folders: a Maildir's handled mail moves to its cur/ (seen, and flagged when quarantined)".into());
            }
            SourceKind::Maildir(normalize(&base.join(path)))
        }
        _ => return Err("give either imap: or maildir:".into()),
    };
    Ok(Source {
        name: raw.name,
        kind,
        alert_after,
    })
}

fn imap(raw: RawImap, base: &Path, done: String, failed: String) -> Result<Imap, String> {
    if raw.password.is_some() {
        return Err("imap.password: passwords do not belong in config.yaml: put it in a file only helpdesk can read (chmod 600) and name it in password_file, or name an environment variable in password_env".into());
    }
    let password = match (raw.password_file, raw.password_env) {
        (Some(file), None) => PasswordSource::File(normalize(&base.join(file))),
        (None, Some(var)) => PasswordSource::Env(var),
        _ => return Err("imap: give password_file (or password_env), one of them".into()),
    };
    let url = Url::parse(&raw.url)?;
    let tls = match (url.secure, raw.starttls) {
        (true, Some(_)) => {
            return Err("imap.starttls is for imap:// URLs; imaps:// is TLS from the start".into());
        }
        (true, None) => ImapTls::Implicit,
        (false, None | Some(true)) => ImapTls::Starttls,
        (false, Some(false)) if is_loopback(&url.host) => ImapTls::Plain,
        (false, Some(false)) => {
            return Err(format!(
                "imap.starttls: false would send the password to {} in clear: use imaps:// or STARTTLS (only a loopback server may go without)",
                url.host
            ));
        }
    };
    for (key, folder) in [("done", &done), ("failed", &failed)] {
        if !is_folder_name(folder) {
            return Err(format!(
                "{key} {folder:?}: a folder name is ASCII letters, digits, spaces and -_.+,:@#()[]=!~' with / between levels, none empty"
            ));
        }
    }
    if done == failed || done == url.mailbox || failed == url.mailbox {
        return Err("done, failed and the mailbox read must be three different folders".into());
    }
    if raw.username.trim().is_empty() || raw.username.chars().any(char::is_control) {
        return Err("imap.username: give the login name".into());
    }
    Ok(Imap {
        port: url.port.unwrap_or(if url.secure { 993 } else { 143 }),
        host: url.host,
        tls,
        mailbox: url.mailbox,
        username: raw.username,
        password,
        ca_file: raw.ca_file.map(|p| normalize(&base.join(p))),
        timeout: duration("imap.timeout", raw.timeout, Duration::from_secs(30))?,
        poll_interval: duration(
            "imap.poll_interval",
            raw.poll_interval,
            Duration::from_secs(5 * 60),
        )?,
        done,
        failed,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Levels joined by `/`, none empty, each of ASCII letters, digits,
/// spaces and `-_.+,:@#()[]=!~'` only: sent to the server as they are, so
/// no LIST wildcard (`*`, `%`), no quoting character and no `&`, which
/// would start modified UTF-7 (RFC 3501 5.1.3), which is not written here.
fn is_folder_name(name: &str) -> bool {
    const PUNCTUATION: &str = " -_.+,:@#()[]=!~'";
    name.len() <= 200
        && name.split('/').all(|level| {
            !level.is_empty()
                && level
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || PUNCTUATION.contains(c))
        })
}

/// An `imap://` or `imaps://` URL: host, port and mailbox (RFC 5092, its
/// server part and path only).
#[derive(Debug, PartialEq, Eq)]
struct Url {
    secure: bool,
    host: String,
    port: Option<u16>,
    mailbox: String,
}

impl Url {
    fn parse(text: &str) -> Result<Self, String> {
        let wrong = |why: &str| {
            format!("imap.url {text:?}: {why}: write e.g. imaps://mail.example.com/INBOX")
        };
        let (secure, rest) = if let Some(rest) = text.strip_prefix("imaps://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("imap://") {
            (false, rest)
        } else {
            return Err(wrong("not an imap:// or imaps:// URL"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(wrong(
                "the user (and password) go in username and password_file, not the URL",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| wrong("the port is not a number from 1 to 65535"))?;
                (host, Some(port))
            }
            _ => (authority, None),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b))
        {
            return Err(wrong("no host name"));
        }
        let mailbox =
            percent_decode(path).ok_or_else(|| wrong("the mailbox is not valid UTF-8"))?;
        let mailbox = match mailbox.trim_end_matches('/') {
            "" => "INBOX".to_owned(),
            name if is_folder_name(name) => name.to_owned(),
            _ => {
                return Err(wrong(
                    "the mailbox name has an empty level or a character other than ASCII letters, digits, spaces and -_.+,:@#()[]=!~'",
                ));
            }
        };
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            mailbox,
        })
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Source>, String> {
        let raw: Vec<RawSource> = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        sources(raw, Path::new("/desk"))
    }

    #[test]
    fn urls() {
        let url = Url::parse("imaps://mail.example.com/INBOX").unwrap();
        assert_eq!(
            (url.secure, url.port, url.mailbox.as_str()),
            (true, None, "INBOX")
        );
        let url = Url::parse("imap://127.0.0.1:1143/Help%20desk/In").unwrap();
        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(
            (url.port, url.mailbox.as_str()),
            (Some(1143), "Help desk/In")
        );
        assert_eq!(Url::parse("imaps://h").unwrap().mailbox, "INBOX");
        assert_eq!(Url::parse("imaps://[::1]:993/").unwrap().host, "[::1]");
        for bad in [
            "https://h/INBOX",
            "imaps://u:p@h/INBOX",
            "imaps://h:0/",
            "imaps://h:x/",
            "imaps:///INBOX",
            "imaps://h/a//b",
            "imaps://h/%ff",
            "imaps://h/a%0Ab",
            "imaps://h/%4",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_source_is_validated() {
        let ok = parse(
            "- name: inbox\n  imap: {url: 'imaps://mail.example.com/INBOX', username: hd, password_file: imap.secret}\n- name: drop\n  maildir: mail\n",
        )
        .unwrap();
        let SourceKind::Imap(imap) = &ok[0].kind else {
            panic!()
        };
        assert_eq!((imap.port, imap.tls), (993, ImapTls::Implicit));
        assert_eq!(imap.done, "Helpdesk/Done");
        assert_eq!(
            imap.password,
            PasswordSource::File("/desk/imap.secret".into())
        );
        assert_eq!(ok[1].kind, SourceKind::Maildir("/desk/mail".into()));
        let starttls =
            parse("- name: a\n  imap: {url: 'imap://mx/INBOX', username: u, password_env: P}\n")
                .unwrap();
        let SourceKind::Imap(imap) = &starttls[0].kind else {
            panic!()
        };
        assert_eq!((imap.port, imap.tls), (143, ImapTls::Starttls));
        for (yaml, says) in [
            ("- name: A\n  maildir: m\n", "lower-case"),
            (
                "- name: a\n  maildir: m\n- name: a\n  maildir: n\n",
                "another source",
            ),
            ("- name: a\n", "either imap: or maildir:"),
            ("- name: a\n  maildir: m\n  done: X\n", "IMAP folders"),
            (
                "- name: a\n  imap: {url: 'imaps://h', username: u, password: x}\n",
                "do not belong",
            ),
            (
                "- name: a\n  imap: {url: 'imaps://h', username: u}\n",
                "password_file",
            ),
            (
                "- name: a\n  imap: {url: 'imap://mx.example.com', username: u, password_env: P, starttls: false}\n",
                "in clear",
            ),
            (
                "- name: a\n  imap: {url: 'imaps://h', username: u, password_env: P}\n  done: INBOX\n",
                "three different",
            ),
            (
                "- name: a\n  imap: {url: 'imaps://h', username: u, password_env: P}\n  failed: 'a/*'\n",
                "folder name",
            ),
        ] {
            let error = parse(yaml).unwrap_err();
            assert!(error.contains(says), "{yaml}: {error}");
        }
        let plain = parse("- name: a\n  imap: {url: 'imap://127.0.0.1:1143', username: u, password_env: P, starttls: false}\n").unwrap();
        let SourceKind::Imap(imap) = &plain[0].kind else {
            panic!()
        };
        assert_eq!(imap.tls, ImapTls::Plain);
    }

    #[test]
    fn folder_names_are_an_allow_list_of_ascii() {
        for good in [
            "Helpdesk/Done",
            "INBOX.Done",
            "Archive 2026/[Gmail] (old)",
            "a-b_c+d",
        ] {
            assert!(is_folder_name(good), "{good}");
        }
        for bad in [
            "",
            "/",
            "a//b",
            "a/",
            "R&D",
            "Büro",
            "a*",
            "50%",
            "a\"b",
            "a\\b",
            "a\rb",
            "a\u{7f}",
            "a{3}",
            "\u{200b}x",
        ] {
            assert!(!is_folder_name(bad), "{bad:?}");
        }
        assert!(!is_folder_name(&"a".repeat(201)));
    }
}
