//! `maintenance:` which senders are network providers whose mail is a
//! maintenance notice (not a request), how each provider's notices are
//! read, and which playbooks run when a maintenance is scheduled,
//! cancelled, starts and ends. Validated here; `maintenance/` reads the
//! notices and `delivery/maintenance.rs` acts on them.

use std::path::PathBuf;
use std::time::Duration;

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
