//! The capabilities shipped in the repository (and compiled into the
//! binary) are real playbooks that Ansible accepts and can run.

use std::process::Command;

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

#[test]
fn the_shipped_query_account_playbook_runs_for_real() {
    // Read-only, so it runs on this machine; --check keeps it that way.
    let desk = Helpdesk::from_defaults();
    let config = desk.config_text().replace(
        "  timeout: 2m\n",
        "  timeout: 2m\n  extra_args: [--check]\n",
    );
    let desk = desk.config(&config);
    let out = desk.run(&mail("it@example.com", "query account", "username: nobody"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let files = desk.run_logs();
    assert_eq!(files.len(), 1, "{files:?}");
    let log = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        log.contains("Account 'nobody' on localhost: uid 65534"),
        "{log}"
    );
    assert!(log.contains("failed=0"), "{log}");
}
