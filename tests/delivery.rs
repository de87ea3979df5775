//! Issue 5: the delivery contract, through the built binary and the real
//! ansible-playbook: exactly once, concurrency, crash recovery, exit
//! statuses, the journal's commands and the metrics file.

use std::fs;
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Helpdesk, exec, fixture, mail, outcomes, processes_with, wait_for, wait_or};

pub(crate) fn start_run(desk: &Helpdesk, message: &[u8]) -> Child {
    let mut child = desk
        .command(&["run"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    child
}

fn finish(children: Vec<Child>) -> Vec<i32> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.status.code().unwrap_or(-1)
        })
        .collect()
}

#[test]
fn twenty_distinct_messages_at_once_make_twenty_rows_and_twenty_runs() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let children: Vec<Child> = (0..20)
        .map(|n| {
            start_run(
                &desk,
                &mail(
                    &format!("user{n}@example.com"),
                    "quota",
                    "more for me by 1 gb",
                ),
            )
        })
        .collect();
    assert_eq!(finish(children), vec![0; 20]);
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 20);
    assert_eq!(outcomes(&rows), vec!["done"; 20]);
    assert_eq!(desk.run_logs().len(), 20, "one playbook run per message");
    assert!(
        fs::read_dir(desk.path().join("state/spool"))
            .unwrap()
            .next()
            .is_none(),
        "the spool is empty"
    );
}

#[test]
fn the_same_message_five_times_at_once_runs_once() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let message = mail("alice@example.com", "quota", "more for me by 1 gb");
    let children: Vec<Child> = (0..5).map(|_| start_run(&desk, &message)).collect();
    assert_eq!(finish(children), vec![0; 5]);
    let rows = desk.log_rows();
    assert_eq!(
        outcomes(&rows),
        ["done", "duplicate", "duplicate", "duplicate", "duplicate"]
    );
    assert_eq!(desk.run_logs().len(), 1);
    let original = rows.iter().find(|r| r["outcome"] == "done").unwrap()["id"].clone();
    assert!(
        rows.iter()
            .filter(|r| r["outcome"] == "duplicate")
            .all(|r| r["duplicate_of"] == original)
    );

    // Later, a redelivery (an MTA retry, a fetcher re-fetching) is still a duplicate.
    let out = desk.run(&message);
    assert_eq!(out.code, 0);
    assert_eq!(desk.run_logs().len(), 1);
    // Without a Message-ID, the bytes are the key.
    let anonymous = b"From: bob@example.com\r\nSubject: quota\r\n\r\nmore for me by 1 gb\r\n";
    assert_eq!(desk.run(anonymous).code, 0);
    assert_eq!(desk.run(anonymous).code, 0);
    assert_eq!(desk.run_logs().len(), 2);
}

#[test]
fn a_helpdesk_killed_mid_playbook_leaves_nothing_running_and_only_a_rerun_finishes_the_request() {
    let desk = Helpdesk::from_defaults();
    let gate = desk.path().join("gate");
    // The first attempt waits for a gate that is only opened after the kill.
    let playbook = crate::support::echo_playbook().replacen(
        "  tasks:\n",
        &format!("  tasks:\n    - name: Wait for the gate\n      ansible.builtin.shell: \"test -e {} || sleep 300\"\n", gate.display()),
        1,
    );
    let desk = desk.file("playbooks/storage.yaml", &playbook);
    let message = mail("alice@example.com", "quota", "more for me by 1 gb");
    let mut child = start_run(&desk, &message);
    wait_for("the playbook to start", Duration::from_secs(60), || {
        !processes_with(&format!("{} || sleep 300", gate.display())).is_empty()
    });
    assert_eq!(desk.log_rows()[0]["state"], "running");
    child.kill().unwrap(); // SIGKILL, like the OOM killer
    let _ = child.wait();

    let desk_path = desk.path().display().to_string();
    wait_or(
        "the playbook to die with helpdesk",
        Duration::from_secs(10),
        &mut || processes_with(&desk_path).is_empty(),
        &|| {
            format!(
                "still running after helpdesk died: {:?}",
                processes_with(&desk_path)
            )
        },
    );
    assert_eq!(desk.received(), None);
    assert_eq!(
        fs::read_dir(desk.path().join("state/spool"))
            .unwrap()
            .count(),
        1,
        "the message waits in the spool"
    );

    fs::write(&gate, "").unwrap();
    // Issue 14: its playbook started, so retry never starts it again by
    // itself: the outcome is unknown, and an operator decides.
    let out = exec(desk.command(&["-v", "retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 1, "one journal row: {rows:?}");
    assert_eq!(rows[0]["outcome"], "unknown");
    assert_eq!(rows[0]["attempts"], 2);
    assert_eq!(desk.received(), None);
    let id = rows[0]["id"].to_string();
    let out = exec(desk.command(&["retry", "--rerun", &id]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = desk.log_rows();
    assert_eq!(rows[0]["outcome"], "done");
    assert_eq!(rows[0]["attempts"], 3);
    assert_eq!(desk.received().unwrap()["targets"], "alice");
    // A second retry finds nothing to do; the MTA redelivering is a duplicate.
    assert_eq!(exec(desk.command(&["retry"]), b"").code, 0);
    assert_eq!(desk.run(&message).code, 0);
    assert_eq!(
        crate::support::Helpdesk::run_logs(&desk).len(),
        2,
        "the killed attempt's log and the completed one"
    );
    assert_eq!(outcomes(&desk.log_rows()), ["done", "duplicate"]);
}

#[test]
fn a_state_folder_that_cannot_be_written_is_a_temporary_failure() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let blocker = desk.path().join("not-a-folder");
    fs::write(&blocker, "").unwrap();
    let good = desk.config_text().to_owned();
    let desk = desk.config(&format!("{good}state_dir: not-a-folder/state\n"));
    let message = mail("alice@example.com", "quota", "more for me by 1 gb");
    let out = desk.run(&message);
    out.assert_said(75, "cannot spool the message");
    assert_eq!(desk.received(), None);
    let desk = desk.config(&good);
    assert_eq!(desk.run(&message).code, 0);
    assert_eq!(desk.received().unwrap()["targets"], "alice");
}

#[test]
fn queue_mode_exits_before_the_playbook_and_a_detached_retry_runs_it() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let config = format!("{}delivery: queue\n", desk.config_text());
    let desk = desk.config(&config);
    let out = desk.run(&mail("alice@example.com", "quota", "more for me by 1 gb"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(desk.received().is_none(), "run waited for the playbook");
    wait_for("the queued request to run", Duration::from_secs(60), || {
        desk.received().is_some() && desk.log_rows()[0]["state"] == "finished"
    });
    assert_eq!(desk.log_rows()[0]["outcome"], "done");
}

/// `log`: the table, newest first, and its filters. Returns the one row
/// `--outcome done --type manage_users` finds.
fn check_log_and_its_filters(desk: &Helpdesk) -> Value {
    let out = exec(desk.command(&["log"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let table: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(table.len(), 4, "{}", out.stdout);
    assert!(table[0].contains("sender") && table[0].contains("outcome"));
    assert!(
        table[1].contains("duplicate")
            && table[2].contains("ignored")
            && table[3].contains("manage_users")
    );
    let out = exec(
        desk.command(&[
            "log",
            "--outcome",
            "done",
            "--type",
            "manage_users",
            "--since",
            "1h",
            "--format",
            "json",
        ]),
        b"",
    );
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let row: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["vars"]
            .as_str()
            .map(|v| v.contains("\"password\":\"[redacted]\"")),
        Some(true),
        "{row}"
    );
    let out = exec(
        desk.command(&["log", "--sender", "nobody@example.com"]),
        b"",
    );
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the header: {}",
        out.stdout
    );
    row
}

/// The metrics file counts each outcome and the one run.
fn check_metrics(desk: &Helpdesk) {
    let metrics = fs::read_to_string(desk.path().join("state/metrics.prom")).unwrap();
    assert!(
        metrics
            .contains("helpdesk_messages_total{request_type=\"manage_users\",outcome=\"done\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("helpdesk_messages_total{request_type=\"\",outcome=\"ignored\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("helpdesk_messages_total{request_type=\"\",outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("helpdesk_run_duration_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("helpdesk_run_duration_seconds_bucket{le=\"+Inf\"} 1"),
        "{metrics}"
    );
}

#[test]
fn log_show_and_metrics() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    assert_eq!(desk.run(&fixture("new_user.eml")).code, 0);
    assert_eq!(desk.run(&fixture("renewal.eml")).code, 0);
    assert_eq!(desk.run(&fixture("new_user.eml")).code, 0);
    let row = check_log_and_its_filters(&desk);

    let id = row["id"].to_string();
    let out = exec(desk.command(&["show", &id]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("outcome         done"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("PLAY RECAP"),
        "the run log is shown: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("\"1234\""), "{}", out.stdout);
    assert_eq!(exec(desk.command(&["show", "999"]), b"").code, 66);

    check_metrics(&desk);
}

/// Issue 15: each delivery's first line of output starts with its
/// outcome and row (an MTA keeps only the start: Postfix's pipe about 100
/// characters), with no time or level before it when stderr is not a
/// terminal, and the long parts last.
#[test]
fn issue_15_a_deliverys_log_line_starts_with_its_outcome_and_row() {
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .file(
            "playbooks/query_account.yaml",
            "- hosts: helpdesk_targets\n  gather_facts: false\n  tasks:\n    - name: Fail\n      ansible.builtin.fail: {msg: no such account}\n",
        );
    let request = mail("alice@example.com", "quota", "more for me by 1 gb");
    let cases: [(&[u8], &str); 3] = [
        (&request, "done row 1: storage: playbook succeeded in "),
        (
            &mail("alice@example.com", "query account", "username: bob"),
            "failed row 2: query_account: playbook failed with exit code 2 in ",
        ),
        (
            &request,
            "duplicate row 3: another delivery of row 1, nothing run",
        ),
    ];
    for (raw, start) in cases {
        let out = desk.run(raw);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with(start), "{start:?}: {}", out.stderr);
        if !start.starts_with("duplicate") {
            // The long parts last: sender, Message-ID, run log.
            let from = first
                .find("; from alice@example.com; message-id <")
                .unwrap();
            let log = first.find("; log ").unwrap();
            assert!(from < log && first.ends_with(".log"), "{first}");
        }
    }
}

/// Issue 15: contrib/'s systemd units pass `systemd-analyze verify`, and
/// the worker's ExecStart, with this test's binary and config, is a
/// worker that keeps running and handles what is in the spool; the retry
/// service's ExecStart runs too, and the fetch service's is `fetch`.
#[test]
fn issue_15_the_contrib_systemd_units_verify_and_their_command_lines_run() {
    use std::process::Command;
    let units = tempfile::tempdir().unwrap();
    let mut exec_start = std::collections::BTreeMap::new();
    for name in [
        "helpdesk-worker.service",
        "helpdesk-retry.service",
        "helpdesk-retry.timer",
        "helpdesk-fetch.service",
    ] {
        let text = fs::read_to_string(crate::support::repo().join("contrib").join(name)).unwrap();
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("ExecStart=")) {
            exec_start.insert(name, line.to_owned());
        }
        // The binary must exist for verify: this test's.
        let text = text.replace("/usr/local/bin/helpdesk", env!("CARGO_BIN_EXE_helpdesk"));
        fs::write(units.path().join(name), text).unwrap();
    }
    let out = Command::new(crate::support::need("systemd-analyze"))
        .arg("verify")
        .args(
            fs::read_dir(units.path())
                .unwrap()
                .map(|e| e.unwrap().path()),
        )
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let command = |unit: &str| {
        let line = &exec_start[unit];
        let argv: Vec<String> = line
            .split_whitespace()
            .map(|a| {
                a.replace(
                    "/etc/helpdesk/config.yaml",
                    &desk.config_path().display().to_string(),
                )
            })
            .collect();
        assert_eq!(argv[0], "/usr/local/bin/helpdesk", "{line}");
        let mut command = crate::support::helpdesk();
        command
            .args(&argv[1..])
            .env("HELPDESK_TEST_OUT", desk.path().join("received.json"));
        command
    };
    // Spooled by a `run` that died before its claim: the worker's to do.
    let spool = desk.path().join("state/spool");
    fs::create_dir_all(&spool).unwrap();
    fs::write(
        spool.join("20261201T000000000001Z-1-00000001.eml"),
        mail("alice@example.com", "quota", "more for me by 3 gb"),
    )
    .unwrap();
    let mut worker = command("helpdesk-worker.service")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "the worker to handle the spool",
        Duration::from_secs(60),
        || {
            desk.path().join("state/journal.sqlite").exists()
                && outcomes(&desk.log_rows()) == ["done"]
        },
    );
    assert!(worker.try_wait().unwrap().is_none(), "the worker exited");
    worker.kill().unwrap();
    let _ = worker.wait();
    assert!(desk.received().is_some(), "the playbook ran");
    let retry = exec(command("helpdesk-retry.service"), b"");
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    // Issue 17: the fetch service's ExecStart is `fetch`, watching, which
    // (without sources: in this config) is a config error, not a crash loop.
    let fetch = exec(command("helpdesk-fetch.service"), b"");
    assert_eq!(fetch.code, 78, "{}", fetch.stderr);
    assert!(
        fetch.stderr.contains("no sources: to read"),
        "{}",
        fetch.stderr
    );
}
