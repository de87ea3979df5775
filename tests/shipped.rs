//! The capabilities shipped in the repository (and compiled into the
//! binary) are real playbooks that Ansible accepts and can run.

use std::process::Command;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, ansible_playbook, mail, repo};

#[test]
fn every_shipped_playbook_passes_syntax_check() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(repo().join("playbooks")).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(ansible_playbook())
            .args(["--syntax-check", "-i"])
            .arg(repo().join("inventory"))
            .arg(&path)
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "manage_account.yaml",
            "manage_users.yaml",
            "query_account.yaml",
            "storage.yaml"
        ]
    );
}

/// Issue 15 (must show): a query_account request's reply holds the
/// account's details, handed back by the shipped playbook in its
/// `helpdesk_report` fact, the run log holds them too.
#[test]
fn issue_15_the_shipped_query_account_reply_holds_the_accounts_details() {
    // Read-only, so it runs on this machine; --check keeps it that way.
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults().replying_to(&server);
    let config = desk.config_text().replace(
        "  timeout: 2m\n",
        "  timeout: 2m\n  extra_args: [--check]\n",
    );
    let desk = desk.config(&config);
    let out = desk.run(&mail("it@example.com", "query account", "username: nobody"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let reply = server.only().body();
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    for line in [
        "Your query_account request is done (for nobody).".to_owned(),
        "account: nobody on localhost".to_owned(),
        format!("uid: {}", id("-u")),
        format!("primary gid: {}", id("-g")),
        format!("groups: {}", id("-Gn").replace(' ', ", ")),
        "home: /nonexistent".to_owned(),
        "localhost: 0 changes made".to_owned(),
    ] {
        assert!(reply.contains(&line), "{line:?} not in {reply}");
    }
    let last = reply
        .lines()
        .find_map(|l| l.strip_prefix("last login: "))
        .unwrap_or_else(|| panic!("no last login: {reply}"));
    assert!(!last.is_empty() && last != "unknown", "{reply}");
    let shell = reply.lines().find_map(|l| l.strip_prefix("shell: "));
    assert!(shell.is_some_and(|s| s.starts_with('/')), "{reply}");
    let files = desk.run_logs();
    assert_eq!(files.len(), 1, "{files:?}");
    let log = std::fs::read_to_string(&files[0]).unwrap();
    assert!(log.contains(&format!("\"uid\": \"{}\"", id("-u"))), "{log}");
    assert!(log.contains("failed=0"), "{log}");
}
