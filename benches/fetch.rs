//! Issue 17's benchmark: messages per second through `helpdesk fetch
//! --once` for 1,000 small messages in a real Dovecot (the tests'
//! throw-away instance, `tests/support/dovecot.rs`: loopback, TLS from a
//! test CA), and the same through a Maildir source for comparison.
//! `ansible.command` is /bin/true, so the figure is what fetch and the
//! delivery contract cost per message (TLS, FETCH, spool, fsync, journal,
//! the budgeted decision in a child process, the MOVE), not Ansible's own
//! start-up. Each run checks that every message was journaled once,
//! `done`, and moved.
//!
//!   cargo bench --bench fetch            # or benches/measure fetch
//!
//! FETCH_MESSAGES (default 1000) and FETCH_RUNS (default 3) change it;
//! the median run is the figure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::dovecot::Dovecot;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A config reading `source` (YAML lines of one `sources:` entry), with
/// the shipped helpdesk folder, everyone trusted, and /bin/true for
/// ansible-playbook.
fn desk(dir: &Path, source: &str) -> std::path::PathBuf {
    let config = format!(
        "helpdesk_dir: {}\nstate_dir: state\nansible:\n  command: /bin/true\nauthentication: {{require: none}}\naccess:\n  - {{requests: ['*'], senders: ['*']}}\nsources:\n{source}",
        support::repo().display()
    );
    let path = dir.join("config.yaml");
    fs::write(&path, config).unwrap();
    path
}

fn messages(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            support::mail(
                &format!("user{n}@example.com"),
                "quota",
                "more for me by 1 gb",
            )
        })
        .collect()
}

/// `fetch --once` with `config`: its wall time, and the journal's rows.
fn fetch_once(config: &Path) -> (Duration, usize) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_helpdesk"))
        .arg("--config")
        .arg(config)
        .args(["fetch", "--once"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = Command::new(env!("CARGO_BIN_EXE_helpdesk"))
        .arg("--config")
        .arg(config)
        .args([
            "log",
            "--format",
            "json",
            "--outcome",
            "done",
            "--limit",
            "100000",
        ])
        .output()
        .unwrap();
    (took, String::from_utf8_lossy(&log.stdout).lines().count())
}

fn imap_run(count: usize) -> Duration {
    let dovecot = Dovecot::start();
    dovecot.append_many("INBOX", &messages(count));
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("imap.secret");
    fs::write(&secret, dovecot.password()).unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = desk(
        dir.path(),
        &format!(
            "  - name: inbox\n    imap: {{url: '{}', username: '{}', password_file: imap.secret, ca_file: '{}'}}\n    done: Done\n",
            dovecot.imaps_url("INBOX"),
            dovecot.user(),
            dovecot.ca_file().display()
        ),
    );
    let (took, done) = fetch_once(&config);
    assert_eq!(done, count, "every message journaled once, done");
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Done"), count);
    took
}

fn maildir_run(count: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    for part in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(part)).unwrap();
    }
    for (n, raw) in messages(count).iter().enumerate() {
        fs::write(
            maildir.join("new").join(format!("1764000000.M{n}P1.bench")),
            raw,
        )
        .unwrap();
    }
    let config = desk(
        dir.path(),
        &format!("  - name: drop\n    maildir: {}\n", maildir.display()),
    );
    let (took, done) = fetch_once(&config);
    assert_eq!(done, count, "every message journaled once, done");
    assert_eq!(fs::read_dir(maildir.join("cur")).unwrap().count(), count);
    took
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken.
    let count = setting("FETCH_MESSAGES", 1000);
    let runs = setting("FETCH_RUNS", 3).max(1);
    println!("| source | messages | runs | median wall | messages/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, run) in [
        ("IMAP (Dovecot, imaps)", imap_run as fn(usize) -> Duration),
        ("Maildir", maildir_run),
    ] {
        let took = median((0..runs).map(|_| run(count)).collect());
        println!(
            "| {name} | {count} | {runs} | {:.1} s | {:.0} |",
            took.as_secs_f64(),
            count as f64 / took.as_secs_f64()
        );
    }
}
