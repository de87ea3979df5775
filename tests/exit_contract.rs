//! Issue 14: exit statuses by contract, through the built binary. The
//! commands that take mail (`run`, `retry`, `worker`) exit only 0 or 75,
//! even on a bad command line; the others use sysexits (64 for usage).
//! And a new state folder under a burst of deliveries waits for its locks
//! instead of giving up at once.

use std::collections::BTreeSet;

use crate::support::{Helpdesk, exec, helpdesk, mail};

fn status_of(args: &[&str]) -> crate::support::Output {
    let mut command = helpdesk();
    command.args(args);
    exec(command, b"")
}

#[test]
fn issue_14_a_bad_flag_to_run_is_75_and_says_what() {
    let out = status_of(&["run", "--bogus-flag"]);
    out.assert_said(75, "--bogus-flag");
    // After a global option with a value, too.
    let out = status_of(&["--config", "/nonexistent.yaml", "run", "--bogus-flag"]);
    out.assert_said(75, "--bogus-flag");
    let out = status_of(&["-v", "--log-format", "json", "run", "a", "b"]);
    out.assert_said(75, "unexpected argument");
}

#[test]
fn issue_14_a_bad_flag_to_retry_or_worker_is_75() {
    status_of(&["retry", "--bogus-flag"]).assert_said(75, "--bogus-flag");
    status_of(&["worker", "--bogus-flag"]).assert_said(75, "--bogus-flag");
    status_of(&["worker", "--interval"]).assert_said(75, "--interval");
    status_of(&["deliver-spooled", "--bogus-flag"]).assert_said(75, "--bogus-flag");
}

#[test]
fn issue_14_a_bad_flag_to_log_or_an_unknown_subcommand_is_64() {
    status_of(&["log", "--bogus-flag"]).assert_said(64, "--bogus-flag");
    status_of(&["--config", "x.yaml", "log", "--limit", "many"]).assert_said(64, "--limit");
    status_of(&["frobnicate"]).assert_said(64, "frobnicate");
    status_of(&["--log-format", "xml", "log"]).assert_said(64, "xml");
    // No subcommand at all is a usage error too.
    status_of(&[]).assert_said(64, "Usage");
}

#[test]
fn issue_14_help_and_version_exit_0_with_their_output() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["help"],
        &["help", "run"],
        &["--version"],
    ] {
        let out = status_of(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
    }
    assert!(status_of(&["run", "--help"]).stdout.contains("Usage"));
}

#[test]
fn issue_14_log_outcome_bogus_is_64_naming_the_words() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    assert_eq!(desk.run(&mail("a@example.com", "quota", "1 gb")).code, 0);
    let out = exec(desk.command(&["log", "--outcome", "bogus"]), b"");
    out.assert_said(64, "bogus");
    assert!(out.stderr.contains("done"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let out = exec(desk.command(&["log", "--outcome", "done"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A playbook that does next to nothing, quickly.
const QUICK_PLAYBOOK: &str =
    "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n";

#[test]
fn issue_14_thirty_two_deliveries_on_a_new_state_folder_all_wait_for_the_journal() {
    let desk = Helpdesk::from_defaults().file("playbooks/storage.yaml", QUICK_PLAYBOOK);
    assert!(!desk.path().join("state").exists(), "a new state folder");
    // Each delivery in a thread of its own, so that all 32 start at once.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..32)
            .map(|n| {
                let message = mail(&format!("u{n}@example.com"), "quota", "more for me by 1 gb");
                let desk = &desk;
                scope.spawn(move || desk.run(&message))
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().unwrap())
            .filter(|out| out.code != 0)
            .map(|out| format!("{}: {}", out.code, out.stderr))
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
    let rows = desk.log_rows();
    let senders: BTreeSet<&str> = rows.iter().filter_map(|r| r["sender"].as_str()).collect();
    assert_eq!(rows.len(), 32, "one row per message");
    assert_eq!(senders.len(), 32, "each message exactly once");
    assert_eq!(crate::support::outcomes(&rows), vec!["done"; 32]);
}
