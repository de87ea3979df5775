//! `maintenance:` which senders are network providers whose mail is a
//! maintenance notice (not a request), how each provider's notices are
//! read, and which playbooks run when a maintenance is scheduled,
//! cancelled, starts and ends. Validated here; `maintenance/` reads the
//! notices and `delivery/maintenance.rs` acts on them.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use serde::Deserialize;

use crate::desk::config::normalize;

/// `lead` when config.yaml gives none.
const DEFAULT_LEAD: Duration = Duration::from_secs(15 * 60);
/// Provider names: short, and safe in the journal, logs and metrics.
const MAX_NAME: usize = 40;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    playbooks: RawPlaybooks,
    lead: Option<String>,
    #[serde(default)]
    unreadable: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    senders: Vec<String>,
    parser: Option<RawParser>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawParser {
    Name(String),
    Command(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybooks {
    scheduled: Option<PathBuf>,
    cancelled: Option<PathBuf>,
    started: Option<PathBuf>,
    ended: Option<PathBuf>,
}

/// Validates `maintenance:`; `base` is the config file's folder (for a
/// parser's relative path), `helpdesk_dir` the folder playbooks are in.
pub(crate) fn maintenance(
    raw: Option<RawMaintenance>,
    base: &Path,
    helpdesk_dir: &Path,
) -> Result<MaintenanceConfig, String> {
    let Some(raw) = raw else {
        return Ok(MaintenanceConfig::default());
    };
    let mut providers: Vec<Provider> = Vec::with_capacity(raw.providers.len());
    for (n, raw) in raw.providers.into_iter().enumerate() {
        let provider =
            provider(raw, base).map_err(|e| format!("maintenance.providers[{}]: {e}", n + 1))?;
        if providers.iter().any(|p| p.name == provider.name) {
            return Err(format!(
                "maintenance.providers: two providers are named {:?}: give each its own name",
                provider.name
            ));
        }
        for sender in &provider.senders {
            if let Some(other) = providers.iter().find(|p| p.senders.contains(sender)) {
                return Err(format!(
                    "maintenance.providers: {sender:?} is a sender of both {} and {}: a sender belongs to one provider",
                    other.name, provider.name
                ));
            }
        }
        providers.push(provider);
    }
    let playbook = |key: &str, path: Option<PathBuf>| -> Result<Option<PathBuf>, String> {
        let Some(path) = path else { return Ok(None) };
        let full = normalize(&helpdesk_dir.join(&path));
        if !full.is_file() {
            return Err(format!(
                "maintenance.playbooks.{key}: {} is not a file: write the playbook or fix the path (relative to helpdesk_dir)",
                full.display()
            ));
        }
        Ok(Some(full))
    };
    let playbooks = Playbooks {
        scheduled: playbook("scheduled", raw.playbooks.scheduled)?,
        cancelled: playbook("cancelled", raw.playbooks.cancelled)?,
        started: playbook("started", raw.playbooks.started)?,
        ended: playbook("ended", raw.playbooks.ended)?,
    };
    let lead = match raw.lead {
        None => DEFAULT_LEAD,
        Some(text) => humantime::parse_duration(&text).map_err(|e| {
            format!("maintenance.lead {text:?}: {e}: write a duration such as 15m or 0s")
        })?,
    };
    let mut unreadable = Vec::with_capacity(raw.unreadable.len());
    for address in raw.unreadable {
        let address = address.trim().to_owned();
        if address.parse::<lettre::Address>().is_err() {
            return Err(format!(
                "maintenance.unreadable: {address:?} is not an address: write e.g. noc-team@example.com"
            ));
        }
        unreadable.push(address);
    }
    if !providers.is_empty() && unreadable.is_empty() {
        return Err("maintenance.unreadable is empty: name who gets the notices no parser can read (e.g. [noc-team@example.com]), so that none is lost".into());
    }
    Ok(MaintenanceConfig {
        providers,
        playbooks,
        lead,
        unreadable,
    })
}

fn provider(raw: RawProvider, base: &Path) -> Result<Provider, String> {
    let name = raw.name;
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "name {name:?}: use up to {MAX_NAME} lower-case letters, digits, - and _"
        ));
    }
    if raw.senders.is_empty() {
        return Err(format!(
            "{name}: senders is empty: list the provider's addresses, or *@its-domain"
        ));
    }
    let mut senders = Vec::with_capacity(raw.senders.len());
    for sender in raw.senders {
        let sender = sender.trim().to_ascii_lowercase();
        let domain_ok = |d: &str| !d.is_empty() && d.contains('.') && !d.contains(['@', '*', ' ']);
        let ok = match sender.strip_prefix("*@") {
            Some(domain) => domain_ok(domain),
            None => !sender.contains('*') && sender.parse::<lettre::Address>().is_ok(),
        };
        if !ok {
            return Err(format!(
                "{name}: sender {sender:?}: write an address (noc@provider.example) or a whole domain (*@provider.example)"
            ));
        }
        senders.push(sender);
    }
    let parser = match raw.parser {
        None => Parser::Ical,
        Some(RawParser::Name(word)) if word == "ical" => Parser::Ical,
        Some(RawParser::Name(word)) => {
            return Err(format!(
                "{name}: parser {word:?}: write ical, or a command as a list such as [python3, -m, my_parsers.acme]"
            ));
        }
        Some(RawParser::Command(mut argv)) => {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(format!(
                    "{name}: parser: the command is empty: give the program first, e.g. [python3, parsers/acme.py]"
                ));
            }
            if argv[0].contains('/') && !argv[0].starts_with('/') {
                argv[0] = normalize(&base.join(&argv[0])).display().to_string();
            }
            Parser::Command(argv)
        }
    };
    let timezone = raw
        .timezone
        .map(|zone| {
            chrono_tz::Tz::from_str(zone.trim()).map_err(|_| {
                format!("{name}: timezone {zone:?} is no IANA time zone: write e.g. America/New_York or Europe/Berlin")
            })
        })
        .transpose()?;
    Ok(Provider {
        name,
        senders,
        parser,
        timezone,
        dir: Some(base.to_path_buf()),
    })
}

/// The `maintenance:` section; `Default` (no providers) when it is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MaintenanceConfig {
    pub providers: Vec<Provider>,
    pub playbooks: Playbooks,
    /// `started` runs this long before the start time.
    pub lead: Duration,
    /// Where notices no parser could read are forwarded, with the reason.
    pub unreadable: Vec<String>,
}

/// One provider: who it is and how its notices are read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Provider {
    /// Lower-case letters, digits, `-` and `_`: with the maintenance id it
    /// keys the journal's maintenances (never the provider a notice names
    /// itself, which any provider's sender could write).
    pub name: String,
    /// Sender patterns: an exact address, or `*@domain` (the whole domain,
    /// no subdomains). Compared case-insensitively with the authenticated
    /// sender.
    pub senders: Vec<String>,
    pub parser: Parser,
    /// For notices that write local times without a zone.
    pub timezone: Option<chrono_tz::Tz>,
    /// Where a command parser runs: the config file's folder, so that
    /// `[python3, parsers/acme.py]` means the file beside config.yaml.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parser {
    /// The BCOP iCalendar format (the default).
    Ical,
    /// A program (argv, no shell): the mail on stdin, JSON on stdout.
    Command(Vec<String>),
}

/// Playbooks, relative to the helpdesk folder resolved to absolute paths;
/// any may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Playbooks {
    pub scheduled: Option<PathBuf>,
    pub cancelled: Option<PathBuf>,
    pub started: Option<PathBuf>,
    pub ended: Option<PathBuf>,
}

impl MaintenanceConfig {
    /// The provider whose `senders` match `sender` (an address), if any.
    pub(crate) fn provider_of(&self, sender: &str) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|p| p.senders.iter().any(|s| sender_matches(s, sender)))
    }
}

/// Whether `pattern` (`user@domain` or `*@domain`) matches `sender`.
fn sender_matches(pattern: &str, sender: &str) -> bool {
    let sender = sender.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*@") {
        Some(domain) => sender
            .rsplit_once('@')
            .is_some_and(|(local, d)| !local.is_empty() && d == domain),
        None => sender == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str, dir: &Path) -> Result<MaintenanceConfig, String> {
        let raw: RawMaintenance = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        maintenance(Some(raw), dir, dir)
    }

    #[test]
    fn a_whole_section_reads_and_each_mistake_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.yaml"), "[]").unwrap();
        let good = "providers:\n  - name: zayo\n    senders: ['*@Zayo.com']\n  - name: acme\n    senders: [noc@acme.example]\n    parser: [tools/acme.py, --strict]\n    timezone: America/New_York\nplaybooks: {scheduled: s.yaml}\nlead: 5m\nunreadable: [noc@example.com]\n";
        let config = read(good, dir.path()).unwrap();
        assert_eq!(config.providers[0].senders, ["*@zayo.com"]);
        assert_eq!(config.providers[0].parser, Parser::Ical);
        let Parser::Command(argv) = &config.providers[1].parser else {
            panic!()
        };
        assert_eq!(
            argv[0],
            dir.path().join("tools/acme.py").display().to_string()
        );
        assert_eq!(
            config.providers[1].timezone,
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(config.lead, Duration::from_secs(300));
        assert_eq!(config.playbooks.scheduled, Some(dir.path().join("s.yaml")));
        assert_eq!(config.provider_of("mr@zayo.com").unwrap().name, "zayo");
        for (yaml, said) in [
            (
                "providers: [{name: Zayo, senders: [a@b.c]}]\nunreadable: [n@e.com]",
                "lower-case",
            ),
            (
                "providers: [{name: z, senders: []}]\nunreadable: [n@e.com]",
                "senders is empty",
            ),
            (
                "providers: [{name: z, senders: ['*.zayo.com']}]\nunreadable: [n@e.com]",
                "whole domain",
            ),
            (
                "providers: [{name: z, senders: ['*@*']}]\nunreadable: [n@e.com]",
                "whole domain",
            ),
            (
                "providers: [{name: z, senders: [a@b.c]}, {name: z, senders: [d@b.c]}]\nunreadable: [n@e.com]",
                "two providers",
            ),
            (
                "providers: [{name: z, senders: [a@b.c]}, {name: y, senders: [a@b.c]}]\nunreadable: [n@e.com]",
                "both z and y",
            ),
            (
                "providers: [{name: z, senders: [a@b.c], parser: bcop}]\nunreadable: [n@e.com]",
                "write ical",
            ),
            (
                "providers: [{name: z, senders: [a@b.c], parser: []}]\nunreadable: [n@e.com]",
                "command is empty",
            ),
            (
                "providers: [{name: z, senders: [a@b.c], timezone: Mars/Olympus}]\nunreadable: [n@e.com]",
                "IANA",
            ),
            (
                "providers: [{name: z, senders: [a@b.c]}]",
                "unreadable is empty",
            ),
            (
                "providers: [{name: z, senders: [a@b.c]}]\nunreadable: [nobody]",
                "not an address",
            ),
            ("playbooks: {started: missing.yaml}", "is not a file"),
            ("lead: soon", "maintenance.lead"),
        ] {
            let error = read(yaml, dir.path()).unwrap_err();
            assert!(error.contains(said), "{yaml}: {error}");
        }
    }

    #[test]
    fn senders_match_an_address_or_a_whole_domain_only() {
        assert!(sender_matches("*@zayo.com", "mr@ZAYO.com"));
        assert!(!sender_matches("*@zayo.com", "mr@evil.zayo.com"));
        assert!(!sender_matches("*@zayo.com", "mr@zayo.com.evil"));
        assert!(!sender_matches("*@zayo.com", "@zayo.com"));
        assert!(sender_matches("noc@acme.example", "NOC@acme.example"));
        assert!(!sender_matches("noc@acme.example", "xnoc@acme.example"));
    }
}
