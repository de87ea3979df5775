//! `helpdesk run` against the real ansible-playbook, on localhost.

use std::fs;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::support::{Helpdesk, exec, fixture, mail, processes_with, wait_for, wait_or};

/// The vars `parse` decided, limited to those the echo playbook reports.
fn echoed(parsed: &Value, received: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let received = received.as_object().cloned().unwrap_or_default();
    let decided: Map<String, Value> = parsed["vars"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| crate::support::ECHOED.contains(&k.as_str()))
        .collect();
    (decided, received)
}

#[test]
fn the_playbook_receives_exactly_what_parse_decided() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    for mail in [
        mail(
            "alice@example.com",
            "Increase Storage Quota",
            "Hello, I'd like to increase my storage quota by 9.3 GB please.",
        ),
        mail(
            "hr@example.com",
            "New User",
            "username: john\npassword: 1234\nfirst_name: John\nlast_name: Smith",
        ),
        fixture("new_user_qp_latin1.eml"),
    ] {
        let parsed = desk.parse(&mail);
        let out = desk.run(&mail);
        assert_eq!(out.code, 0, "run failed: {}", out.stderr);
        let received = desk
            .received()
            .unwrap_or_else(|| panic!("the playbook did not run: {}", out.stderr));
        let (decided, received) = echoed(&parsed, &received);
        assert!(decided.len() >= 8, "{decided:?}");
        assert_eq!(received, decided);
        // JSON types survive the trip: a password of digits stays a string.
        if let Some(password) = received.get("password") {
            assert_eq!(password, &Value::String("1234".into()));
        }
    }
}

#[test]
fn nothing_runs_for_unclassified_mail_or_help() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    for mail in [
        mail("carol@example.com", "Renewal of contract", "new user: x"),
        fixture("help_storage.eml"),
        Vec::new(),
    ] {
        let out = desk.run(&mail);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(desk.received(), None);
        assert!(desk.run_files().is_empty(), "{:?}", desk.run_files());
    }
}

#[test]
fn a_failed_playbook_is_an_outcome_and_its_output_is_logged() {
    let desk = Helpdesk::from_defaults().file(
        "playbooks/storage.yaml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Refuse\n      ansible.builtin.fail:\n        msg: quota tools are not installed\n",
    );
    let out = desk.run(&mail("alice@example.com", "quota", "more for me by 1 gb"));
    assert_eq!(
        out.code, 0,
        "a failed playbook must not fail the delivery: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("failed with exit code 2"),
        "{}",
        out.stderr
    );
    let files = desk.run_logs();
    assert_eq!(files.len(), 1, "exactly one run log: {files:?}");
    let log = fs::read_to_string(&files[0]).unwrap_or_default();
    assert!(log.contains("quota tools are not installed"), "{log}");
    assert!(log.contains("failed=1"), "{log}");
    assert!(log.contains("# finished after"), "{log}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(&files[0])
            .map(|m| m.permissions())
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(mode & 0o077, 0, "run logs hold request values: {mode:o}");
}

#[test]
fn a_playbook_past_its_timeout_is_killed_with_its_children() {
    let token = format!("{}.{}", std::process::id(), 4242);
    let desk = Helpdesk::from_defaults().file(
        "playbooks/storage.yaml",
        &format!("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Hang\n      ansible.builtin.command: sleep {token}\n"),
    );
    // Long enough for ansible-playbook to reach the task on a loaded
    // machine (its start-up alone can take seconds): the test is about
    // the children the timeout kills, so they must have started.
    let config = desk.config_text().replace("timeout: 2m", "timeout: 12s");
    let desk = desk.config(&config);
    // In the background, so that the test sees the playbook's sleep start
    // and can fail, not hang, should the timeout never end the run.
    let command = desk.command(&["run"]);
    let request = mail("alice@example.com", "quota", "more for me by 1 gb");
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(exec(command, &request));
    });
    wait_for(
        "the playbook's sleep to start",
        Duration::from_secs(60),
        || !processes_with(&token).is_empty(),
    );
    let out = finished
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("helpdesk still waits on a playbook past its 12 s timeout"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("timed out after 12s"), "{}", out.stderr);
    // The helpdesk ended the run, not the playbook: the log's footer says so.
    let logs = desk.run_logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("TASK [Hang]"), "{log}");
    let footer = log.lines().last().unwrap_or_default();
    assert!(
        footer.starts_with("# finished after") && footer.ends_with(": timed out after 12s"),
        "{log}"
    );
    wait_or(
        "the killed playbook's processes to be gone",
        Duration::from_secs(10),
        &mut || processes_with(&token).is_empty(),
        &|| {
            format!(
                "still running after the timeout: {:?}",
                processes_with(&token)
            )
        },
    );
}

#[test]
fn mail_values_reach_the_playbook_verbatim_never_through_a_shell() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let marker = desk.path().join("pwned");
    let hostile = format!("$(touch {0});touch${{IFS}}{0}`touch {0}`", marker.display());
    let out = desk.run(&mail(
        "hr@example.com",
        "New User",
        &format!("username: john\nfirst_name: \"{hostile}\""),
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let received = desk
        .received()
        .unwrap_or_else(|| panic!("no run: {}", out.stderr));
    assert_eq!(received["first_name"], Value::String(hostile));
    assert!(!marker.exists());
}

#[test]
fn sender_header_can_name_another_header() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let config = format!("{}sender_header: X-Original-Sender\n", desk.config_text());
    let desk = desk.config(&config);
    let parsed = desk.parse(&fixture("list_sender.eml"));
    assert_eq!(parsed["vars"]["from"], "erin@example.com");
    assert_eq!(parsed["vars"]["targets"], "erin");
    let out = desk.run(&fixture("list_sender.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let received = desk
        .received()
        .unwrap_or_else(|| panic!("no run: {}", out.stderr));
    assert_eq!(received["from"], "erin@example.com");
    assert_eq!(
        received["targets"], "erin",
        "the signature's username: root must be ignored"
    );
}
