//! Issue 14: one owner of each message at every moment, and at most one
//! playbook start per request, on the error paths too, through the built
//! binary, the real ansible-playbook and a real SMTP server. A failure to
//! start keeps the message; a playbook whose outcome was lost is marked
//! `unknown`, its sender told, and only an operator runs it again
//! (`helpdesk retry --rerun ID`).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, exec, mail, wait_for};

/// A storage playbook that appends a line to `runs` each time it starts
/// a task, after waiting for `gate` when one is given (and saying so in
/// `waiting`).
fn counting_playbook(runs: &Path, gate: Option<&Path>) -> String {
    let wait = gate.map_or_else(String::new, |gate| {
        format!(
            "    - name: Wait for the gate\n      ansible.builtin.shell: \"touch {gate}.waiting; while [ ! -e {gate} ]; do sleep 0.1; done\"\n",
            gate = gate.display()
        )
    });
    format!(
        "- name: Count the runs\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Count\n      ansible.builtin.shell: \"echo run >> {}\"\n{wait}",
        runs.display()
    )
}

/// Lines in the count file: how many times the playbook ran.
fn runs(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn spool(desk: &Helpdesk) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(desk.path().join("state/spool")) else {
        return Vec::new();
    };
    entries.map(|e| e.unwrap().path()).collect()
}

fn only_row(desk: &Helpdesk) -> Value {
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    rows[0].clone()
}

/// A desk whose storage playbook counts its runs in `count`.
fn counting_desk(gate: Option<&Path>) -> (Helpdesk, PathBuf) {
    let desk = Helpdesk::from_defaults();
    let count = desk.path().join("count");
    let playbook = counting_playbook(&count, gate);
    (desk.file("playbooks/storage.yaml", &playbook), count)
}

#[test]
fn issue_14_queue_mode_keeps_a_message_whose_playbook_cannot_start_and_runs_it_once_fixed() {
    let (desk, count) = counting_desk(None);
    let good = desk.config_text().to_owned();
    let real = crate::support::ansible_playbook().display().to_string();
    let desk = desk.config(&format!(
        "{}delivery: queue\n",
        good.replace(&real, "/nonexistent")
    ));
    let out = desk.run(&mail("alice@example.com", "quota", "more for me by 1 gb"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The detached retry tries it, and puts the claim back saying why.
    wait_for(
        "the failed start to be journaled",
        Duration::from_secs(60),
        || {
            only_row(&desk)["reason"]
                .as_str()
                .is_some_and(|r| r.contains("/nonexistent"))
        },
    );
    let row = only_row(&desk);
    assert_eq!(row["state"], "claimed", "{row}");
    assert_eq!(row["claimed_by"], Value::Null, "{row}");
    assert_eq!(row["started_at"], Value::Null, "{row}");
    assert_eq!(spool(&desk).len(), 1, "the message is kept");
    let show = exec(desk.command(&["show", &row["id"].to_string()]), b"");
    assert!(
        show.stdout.contains("cannot start /nonexistent"),
        "{}",
        show.stdout
    );
    // Another retry while it is still broken: kept again, nothing lost.
    let out = exec(desk.command(&["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(spool(&desk).len(), 1);
    assert_eq!(runs(&count), 0);

    let desk = desk.config(&format!("{good}delivery: queue\n"));
    let out = exec(desk.command(&["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row = only_row(&desk);
    assert_eq!(row["outcome"], "done", "{row}");
    assert_eq!(runs(&count), 1);
    assert!(spool(&desk).is_empty());
    assert_eq!(exec(desk.command(&["retry"]), b"").code, 0);
    assert_eq!(runs(&count), 1, "run exactly once");
}

/// Holds the journal's write lock (`BEGIN IMMEDIATE`) until dropped.
struct JournalLock(Child);

impl JournalLock {
    fn take(journal: &Path) -> Self {
        let python = crate::support::ansible_playbook().with_file_name("python");
        let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\nsys.stdin.read()\nc.execute('ROLLBACK')\n";
        let mut child = Command::new(python)
            .args(["-c", script])
            .arg(journal)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Self(child)
    }
}

impl Drop for JournalLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn issue_14_an_outcome_that_cannot_be_journaled_is_unknown_told_and_run_again_only_on_request() {
    let server = SmtpServer::plain();
    let gate = std::env::temp_dir().join(format!("helpdesk-gate-{}", crate::support::unique_id()));
    let (desk, count) = counting_desk(Some(&gate));
    let desk = desk.replying_to(&server).adding("journal_timeout: 1s\n");
    let mut run = desk
        .command(&["run"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let message = mail("alice@example.com", "quota", "more for me by 1 gb");
    run.stdin.take().unwrap().write_all(&message).unwrap();
    let waiting = PathBuf::from(format!("{}.waiting", gate.display()));
    wait_for("the playbook to start", Duration::from_secs(60), || {
        waiting.exists()
    });
    let lock = JournalLock::take(&desk.path().join("state/journal.sqlite"));
    fs::write(&gate, "").unwrap();
    let out = run.wait_with_output().unwrap();
    drop(lock);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("outcome cannot be journaled"), "{stderr}");
    assert_eq!(runs(&count), 1);
    assert!(
        server.received().is_empty(),
        "no result told before it is journaled"
    );

    let out = exec(desk.command(&["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row = only_row(&desk);
    assert_eq!(row["outcome"], "unknown", "{row}");
    assert_eq!(row["state"], "finished", "{row}");
    assert_eq!(runs(&count), 1, "never started again by itself");
    assert!(spool(&desk).is_empty());
    server
        .only()
        .assert_body_says("may or may not have completed");
    let log = exec(desk.command(&["log", "--outcome", "unknown"]), b"");
    assert_eq!(log.stdout.lines().count(), 2, "{}", log.stdout);
    assert_eq!(exec(desk.command(&["retry"]), b"").code, 0);
    assert_eq!(runs(&count), 1);

    let id = row["id"].to_string();
    let out = exec(desk.command(&["retry", "--rerun", &id]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("run again: done"), "{}", out.stdout);
    assert_eq!(runs(&count), 1 + 1);
    assert_eq!(only_row(&desk)["outcome"], "done");
    // Not unknown any more: a second rerun is refused.
    let again = exec(desk.command(&["retry", "--rerun", &id]), b"");
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("not unknown"), "{}", again.stderr);
    assert_eq!(runs(&count), 2);
    let _ = fs::remove_file(&gate);
    let _ = fs::remove_file(&waiting);
}
