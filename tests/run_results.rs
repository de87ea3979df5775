//! Issue 14: a run is `done` only when a host ran a task of it, and every
//! run has files of its own. The real ansible-playbook decides what ran;
//! the journal (`log`, `show`) and the reply say what happened.

use std::fs;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, LOCAL_INVENTORY, exec, mail};

/// A storage request: its playbook is the one a test writes.
fn request() -> Vec<u8> {
    mail("alice@example.com", "quota", "more for me by 1 gb")
}

/// A helpdesk whose storage playbook is `playbook`, with `inventory`
/// appended to the local one, replying to `server`.
fn desk(server: &SmtpServer, playbook: &str, inventory: &str) -> Helpdesk {
    Helpdesk::from_defaults()
        .file("playbooks/storage.yaml", playbook)
        .file("inventory", &format!("{LOCAL_INVENTORY}{inventory}"))
        .replying_to(server)
}

/// Runs the request; returns its one journal row (as `log` gives it) and
/// the reply's text, after checking that `show` prints the row's reason.
fn run_one(desk: &Helpdesk, server: &SmtpServer) -> (Value, String) {
    let out = desk.run(&request());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = rows[0].clone();
    assert_eq!(row["state"], "finished", "{row}");
    assert_eq!(desk.run_logs().len(), 1, "the playbook ran once");
    let id = row["id"].to_string();
    let shown = exec(desk.command(&["show", &id]), b"");
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    if let Some(reason) = row["reason"].as_str() {
        assert!(shown.stdout.contains(reason), "{}", shown.stdout);
    }
    (row, server.only().body())
}

/// What every reply to a run where no host ran a task says.
fn assert_nothing_was_changed(reply: &str, why: &str) {
    assert!(
        reply.contains("Your storage request was not carried out (for alice):"),
        "{reply}"
    );
    assert!(reply.contains("so nothing was changed."), "{reply}");
    assert!(reply.contains(&format!("Why: {why}")), "{reply}");
    // The signature, included as in every other reply.
    assert!(
        reply.contains("helpdesk@example.com (an automatic reply)"),
        "{reply}"
    );
    assert!(!reply.contains("is done"), "{reply}");
}

#[test]
fn issue_14_an_empty_group_is_not_done_and_the_reply_says_no_host_matched() {
    let server = SmtpServer::plain();
    let playbook = "- hosts: webservers\n  gather_facts: false\n  tasks:\n    - name: Grow the quota\n      ansible.builtin.debug: {msg: grown}\n";
    let desk = desk(&server, playbook, "[webservers]\n");
    let (row, reply) = run_one(&desk, &server);
    let why = "no hosts matched the play's hosts: pattern `webservers`";
    assert_eq!(row["outcome"], "failed", "{row}");
    assert_eq!(row["reason"], why, "{row}");
    assert_eq!(
        row["exit_code"], 0,
        "ansible-playbook itself exits 0: {row}"
    );
    assert_nothing_was_changed(&reply, why);
    let log = fs::read_to_string(&desk.run_logs()[0]).unwrap();
    assert!(log.contains("no hosts matched"), "{log}");
    assert!(log.ends_with(&format!(": ran no task: {why}\n")), "{log}");
}

#[test]
fn issue_14_every_host_unreachable_is_not_done() {
    let server = SmtpServer::plain();
    let playbook = "- hosts: far\n  gather_facts: false\n  tasks:\n    - name: Grow the quota\n      ansible.builtin.ping:\n";
    let inventory = "[far]\nnohost.invalid ansible_connection=ssh\n";
    let desk = desk(&server, playbook, inventory);
    let (row, reply) = run_one(&desk, &server);
    assert_eq!(row["outcome"], "failed", "{row}");
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("every host unreachable: nohost.invalid (")
            && reason.contains("nohost.invalid"),
        "{row}"
    );
    assert_nothing_was_changed(&reply, reason);
}

#[test]
fn issue_14_every_task_skipped_is_not_done() {
    let server = SmtpServer::plain();
    let playbook = "- hosts: helpdesk_targets\n  gather_facts: false\n  tasks:\n    - name: Grow the quota\n      ansible.builtin.debug: {msg: grown}\n      when: false\n    - name: Tell the owner\n      ansible.builtin.debug: {msg: told}\n      when: false\n";
    let desk = desk(&server, playbook, "");
    let (row, reply) = run_one(&desk, &server);
    let why = "every task was skipped on every host (localhost)";
    assert_eq!(row["outcome"], "failed", "{row}");
    assert_eq!(row["reason"], why, "{row}");
    assert_nothing_was_changed(&reply, why);
}

#[test]
fn issue_14_a_run_where_a_host_ran_a_task_is_still_done() {
    let server = SmtpServer::plain();
    // One task skipped, one run: something was done.
    let playbook = "- hosts: helpdesk_targets\n  gather_facts: false\n  tasks:\n    - name: Not this one\n      ansible.builtin.debug: {msg: no}\n      when: false\n    - name: Grow the quota\n      ansible.builtin.debug: {msg: grown}\n";
    let desk = desk(&server, playbook, "[webservers]\n");
    let (row, reply) = run_one(&desk, &server);
    assert_eq!(row["outcome"], "done", "{row}");
    assert_eq!(row["reason"], Value::Null, "{row}");
    assert!(
        reply.contains("Your storage request is done (for alice)."),
        "{reply}"
    );
}

/// Waits for the start of the next second, so that what follows soon
/// happens within one second.
fn at_a_new_second() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 20_000_000,
    ));
}

#[test]
fn issue_14_one_retry_runs_two_requests_of_a_type_within_a_second_each_with_its_log() {
    // The case is two runs that start within one second. On a loaded
    // machine `retry` may straddle a second; each try still has to give
    // each run its own log, and one of them has to be the case.
    let mut seconds = Vec::new();
    for _ in 0..5 {
        let started = two_runs_of_a_type_in_one_retry();
        let same = started[0] == started[1];
        seconds.push(started);
        if same {
            return;
        }
    }
    panic!("no try started both runs within one second: {seconds:?}");
}

/// One `retry` of two spooled requests of one type; each run's log is its
/// own and holds its own vars. Returns each run's "# started" line.
fn two_runs_of_a_type_in_one_retry() -> Vec<String> {
    // A quick stand-in for ansible-playbook, so that both runs start
    // within one second: it prints the vars file it was given (`@file`).
    let desk = Helpdesk::from_defaults()
        .file("quick-playbook", "#!/bin/sh\ncat \"${4#@}\"\n")
        .adding("delivery: queue\n");
    let quick = desk.path().join("quick-playbook");
    fs::set_permissions(&quick, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = desk.config_text().replace(
        &crate::support::ansible_playbook().display().to_string(),
        &quick.display().to_string(),
    );
    let desk = desk.config(&config);
    // Spooled by two `run`s that died before their claim: waiting for the
    // one `retry` below (a queued `run` would start a retry of its own).
    let spool = desk.path().join("state/spool");
    fs::create_dir_all(&spool).unwrap();
    for n in 1..=2 {
        let raw = mail(
            "alice@example.com",
            "quota",
            &format!("more for me by {n} gb"),
        );
        fs::write(
            spool.join(format!("20261201T00000000000{n}Z-{n}-0000000{n}.eml")),
            raw,
        )
        .unwrap();
    }
    at_a_new_second();
    exec(desk.command(&["-v", "retry"]), b"").assert_said(0, "2 message(s) handled");
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let logs: Vec<String> = rows
        .iter()
        .map(|row| {
            assert_eq!(row["outcome"], "done", "{row}");
            row["run_log"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_ne!(logs[0], logs[1], "one log each");
    assert_eq!(desk.run_logs().len(), 2);
    let mut started = Vec::new();
    for (row, log) in rows.iter().zip(&logs) {
        let text = fs::read_to_string(log).unwrap();
        let amount = if row["vars"].as_str().unwrap().contains("\"amount\":1") {
            1
        } else {
            2
        };
        assert!(text.contains(&format!("\"amount\": {amount}")), "{text}");
        let name = log.rsplit('/').next().unwrap();
        assert!(name.contains(&format!("-{}-storage-", row["id"])), "{name}");
        started.extend(
            text.lines()
                .find(|l| l.starts_with("# started"))
                .map(str::to_owned),
        );
    }
    assert_eq!(started.len(), 2);
    started
}

/// A request that gives a secret (`password`), for a playbook `playbook`
/// whose inventory holds a secret of its own.
fn secret_request(server: &SmtpServer, playbook: &str) -> (Helpdesk, Vec<u8>) {
    let desk = Helpdesk::from_defaults()
        .file("playbooks/manage_account.yaml", playbook)
        .file(
            "inventory",
            &format!("{LOCAL_INVENTORY}[helpdesk_targets:vars]\ndb_password=Inv3ntorySecret\n"),
        )
        .replying_to(server);
    let raw = mail(
        "alice@example.com",
        "reset password",
        "username: alice\npassword: Hunter2Secret9",
    );
    (desk, raw)
}

#[test]
fn issue_15_secrets_in_a_report_are_redacted_and_control_characters_neutralised() {
    let server = SmtpServer::plain();
    let playbook = r#"- hosts: helpdesk_targets
  gather_facts: false
  vars:
    service_token: Pl4ybookT0ken
  tasks:
    - name: Hand back a report
      ansible.builtin.set_fact:
        helpdesk_report:
          - "new password for {{ targets }}: {{ password }}"
          - "token: {{ service_token }}, db: {{ db_password }}"
          - "colour: \u001b[31mred\u001b[0m, bidi: \u202eevil"
"#;
    let (desk, raw) = secret_request(&server, playbook);
    let parsed = desk.parse(&raw);
    assert_eq!(parsed["request_type"], "manage_account", "{parsed}");
    let out = desk.run(&raw);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let reply = server.only().body();
    assert!(reply.contains("is done"), "{reply}");
    assert!(
        reply.contains("new password for alice: [redacted]"),
        "{reply}"
    );
    assert!(
        reply.contains("token: [redacted], db: [redacted]"),
        "{reply}"
    );
    assert!(
        reply.contains("colour: \u{FFFD}[31mred\u{FFFD}[0m, bidi: \u{FFFD}evil"),
        "{reply}"
    );
    for secret in ["Hunter2Secret9", "Pl4ybookT0ken", "Inv3ntorySecret"] {
        assert!(!reply.contains(secret), "{secret} in the reply: {reply}");
        // Nor in Ansible's report that helpdesk keeps beside the run log.
        for file in desk.run_files() {
            if file.extension().is_some_and(|x| x == "json") {
                let text = fs::read_to_string(&file).unwrap();
                assert!(!text.contains(secret), "{secret} in {}", file.display());
            }
        }
    }
    assert!(
        !reply.contains('\u{1b}') && !reply.contains('\u{202e}'),
        "{reply}"
    );
}

#[test]
fn issue_15_an_oversized_report_is_cut_with_a_marker() {
    let server = SmtpServer::plain();
    // One line of 2000 characters, and 300 more (centred, so each has
    // blanks on both sides: the ones after are dropped).
    let playbook = r#"- hosts: helpdesk_targets
  gather_facts: false
  tasks:
    - name: Hand back too much
      ansible.builtin.set_fact:
        helpdesk_report: "{{ ['L' ~ ('x' * 1999)] + range(300) | map('string') | map('regex_replace', '^', 'line ') | map('center', 100) | list }}"
"#;
    let desk = desk(&server, playbook, "");
    let (row, reply) = run_one(&desk, &server);
    assert_eq!(row["outcome"], "done", "{row}");
    let long = reply
        .lines()
        .find(|l| l.starts_with("Lxxx"))
        .unwrap_or_else(|| panic!("{reply}"));
    assert!(long.ends_with("x [line cut]"), "{long}");
    assert_eq!(long.chars().count(), 500 + " [line cut]".len());
    let shown = reply
        .lines()
        .filter(|l| l.trim_start().starts_with("line "))
        .count();
    // 200 lines in all: the long one and 199 of the others.
    assert_eq!(shown, 199, "{reply}");
    let marker = reply
        .lines()
        .find(|l| l.starts_with("[report cut here:"))
        .unwrap_or_else(|| panic!("no marker: {reply}"));
    assert_eq!(
        marker,
        format!(
            "[report cut here: helpdesk sends at most 200 lines or 16 KiB of it; {} more line(s) not shown]",
            300 - shown
        )
    );
    assert!(reply.len() < 20 * 1024, "{}", reply.len());
    // The recap and the signature still follow.
    assert!(reply.contains("localhost: 0 changes made"), "{reply}");
    assert!(reply.contains("(an automatic reply)"), "{reply}");
}
