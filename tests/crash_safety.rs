//! Issue 14: one owner of each message at every moment, and at most one
//! playbook start per request, on the error paths too, through the built
//! binary, the real ansible-playbook and a real SMTP server. A failure to
//! start keeps the message; a playbook whose outcome was lost is marked
//! `unknown`, its sender told, and only an operator runs it again
//! (`helpdesk retry --rerun ID`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, exec, mail, wait_for, wait_or};

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
    // It backs off: a retry (or a worker's tick) leaves it alone, and
    // log and show say so.
    assert!(show.stdout.contains("next attempt"), "{}", show.stdout);
    let attempts = row["attempts"].as_i64().unwrap();
    let first_backoff = row["retry_after"].as_str().unwrap().to_owned();
    let out = exec(desk.command(&["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("1 message(s) back off"),
        "{}",
        out.stdout
    );
    assert_eq!(only_row(&desk)["attempts"].as_i64(), Some(attempts));
    let log = exec(desk.command(&["log"]), b"");
    assert!(log.stdout.contains("backing off"), "{}", log.stdout);
    // Tried at once while it is still broken: kept again, nothing lost,
    // and it backs off longer.
    let out = exec(desk.command(&["retry", "--now"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(spool(&desk).len(), 1);
    assert_eq!(runs(&count), 0);
    let row = only_row(&desk);
    assert_eq!(row["attempts"].as_i64(), Some(attempts + 1), "{row}");
    assert!(
        row["retry_after"].as_str() > Some(first_backoff.as_str()),
        "{row}"
    );

    let desk = desk.config(&format!("{good}delivery: queue\n"));
    let out = exec(desk.command(&["retry", "--now"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row = only_row(&desk);
    assert_eq!(row["outcome"], "done", "{row}");
    assert_eq!(runs(&count), 1);
    assert!(spool(&desk).is_empty());
    assert_eq!(exec(desk.command(&["retry"]), b"").code, 0);
    assert_eq!(runs(&count), 1, "run exactly once");
}

/// Issue 14: a queued message whose playbook keeps failing to start is
/// not retried for ever: past `limits.queue_lifetime` the next `retry`
/// sets it aside (quarantined, the last failure as the journal's reason,
/// the message kept in the quarantine folder) and tells the sender,
/// without the internal reason; nothing ran, and later retries leave it.
#[test]
fn issue_14_a_message_that_cannot_start_for_longer_than_the_queue_lifetime_is_set_aside() {
    let server = SmtpServer::plain();
    let (desk, count) = counting_desk(None);
    let desk = desk.replying_to(&server);
    let real = crate::support::ansible_playbook().display().to_string();
    let config = desk.config_text().replace(&real, "/nonexistent");
    let desk = desk.config(&format!(
        "{config}delivery: queue\nlimits: {{queue_lifetime: 3s}}\n"
    ));
    let out = desk.run(&mail("alice@example.com", "quota", "more for me by 1 gb"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    wait_for("the failed start", Duration::from_secs(60), || {
        only_row(&desk)["retry_after"].is_string()
    });
    // Within the lifetime it backs off, kept.
    let out = exec(desk.command(&["retry"]), b"");
    assert!(
        out.stdout.contains("1 message(s) back off"),
        "{}",
        out.stdout
    );
    assert_eq!(only_row(&desk)["state"], "claimed");
    std::thread::sleep(Duration::from_millis(3200));
    let out = exec(desk.command(&["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row = only_row(&desk);
    assert_eq!(row["outcome"], "quarantined", "{row}");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains("limits.queue_lifetime (3s)") && reason.contains("/nonexistent"),
        "{reason}"
    );
    let kept = row["spool_path"].as_str().unwrap();
    assert!(
        kept.contains("/quarantine/") && Path::new(kept).is_file(),
        "{row}"
    );
    assert!(spool(&desk).is_empty());
    let reply = server.only().body();
    let words = reply.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("could not start the work for it in 3s") && !reply.contains("nonexistent"),
        "{reply}"
    );
    assert_eq!(exec(desk.command(&["retry"]), b"").code, 0);
    assert_eq!(only_row(&desk)["outcome"], "quarantined");
    assert_eq!(runs(&count), 0, "nothing ran");
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
        // Once it says so, it holds the lock.
        let mut said = [0u8; 7];
        child.stdout.take().unwrap().read_exact(&mut said).unwrap();
        assert_eq!(&said, b"locked\n");
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
    let message = mail("alice@example.com", "quota", "more for me by 1 gb");
    let run = start(&desk, &message);
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
    rerun_killed_while_running(&desk, &id, &gate, &waiting);
    assert_eq!(runs(&count), 1 + 1);
    let out = exec(desk.command(&["retry", "--rerun", &id]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("run again: done"), "{}", out.stdout);
    assert_eq!(runs(&count), 1 + 1 + 1);
    assert_eq!(only_row(&desk)["outcome"], "done");
    // Not unknown any more: a second rerun is refused.
    let again = exec(desk.command(&["retry", "--rerun", &id]), b"");
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("not unknown"), "{}", again.stderr);
    assert_eq!(runs(&count), 3);
    let _ = fs::remove_file(&gate);
    let _ = fs::remove_file(&waiting);
}

/// Kills `helpdesk retry --rerun id` while its playbook waits at `gate`,
/// then retries: the row is unknown again (not running for ever), and
/// nothing started it again.
fn rerun_killed_while_running(desk: &Helpdesk, id: &str, gate: &Path, waiting: &Path) {
    fs::remove_file(gate).unwrap();
    fs::remove_file(waiting).unwrap();
    let rerun = desk
        .command(&["retry", "--rerun", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the rerun's playbook to start", LONG, || waiting.exists());
    kill(rerun);
    assert_eq!(only_row(desk)["state"], "running");
    assert_eq!(exec(desk.command(&["retry"]), b"").code, 0);
    let row = only_row(desk);
    assert_eq!(row["outcome"], "unknown", "{row}");
    assert!(row["reason"].as_str().unwrap().contains("--rerun"), "{row}");
    fs::write(gate, "").unwrap();
}

/// A desk for the kill tests: one playbook slot; the storage playbook
/// appends its `amount` to `count`, then waits for `gate-<amount>` (saying
/// so in `gate-<amount>.waiting`); replies go through a sendmail that
/// waits while `hold-mail` exists (saying so in `hold-mail.waiting`).
fn kill_desk() -> (Helpdesk, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let desk = Helpdesk::from_defaults();
    let dir = desk.path().to_path_buf();
    let count = dir.join("count");
    let playbook = format!(
        "- name: Count and wait\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Count, then wait for the gate\n      ansible.builtin.shell: \"echo {{{{ amount }}}} >> {count}; touch {dir}/gate-{{{{ amount }}}}.waiting; while [ ! -e {dir}/gate-{{{{ amount }}}} ]; do sleep 0.1; done\"\n",
        count = count.display(),
        dir = dir.display()
    );
    let hold = dir.join("hold-mail");
    let sendmail = dir.join("sendmail");
    fs::write(
        &sendmail,
        format!(
            "#!/bin/sh\ncat > /dev/null\nif [ -e {hold} ]; then touch {hold}.waiting; while [ -e {hold} ]; do sleep 0.1; done; fi\n",
            hold = hold.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&sendmail, fs::Permissions::from_mode(0o755)).unwrap();
    let desk = desk
        .file("playbooks/storage.yaml", &playbook)
        .with_mail(&format!(
            "  transport: sendmail\n  sendmail: {}\n",
            sendmail.display()
        ))
        .adding("max_parallel_runs: 1\n");
    (desk, count)
}

/// Request `n`: from user<n>, asking for n GB.
fn request(n: usize) -> Vec<u8> {
    mail(
        &format!("user{n}@example.com"),
        "quota",
        &format!("more for me by {n} gb"),
    )
}

fn row_of(desk: &Helpdesk, n: usize) -> Option<Value> {
    let sender = format!("user{n}@example.com");
    desk.log_rows()
        .into_iter()
        .find(|r| r["sender"] == sender.as_str())
}

/// How many times request `n`'s playbook started.
fn started(count: &Path, n: usize) -> usize {
    fs::read_to_string(count).map_or(0, |t| t.lines().filter(|l| *l == n.to_string()).count())
}

/// `helpdesk run` with `message` on its standard input.
fn start(desk: &Helpdesk, message: &[u8]) -> Child {
    crate::delivery::start_run(desk, message)
}

/// `helpdesk retry`, left to run.
fn start_retry(desk: &Helpdesk) -> Child {
    let mut command = desk.command(&["retry"]);
    command.stdin(Stdio::null()).stdout(Stdio::null());
    command.stderr(Stdio::null()).spawn().unwrap()
}

/// SIGKILL, as the OOM killer or a crashing MTA would.
fn kill(mut child: Child) {
    child.kill().unwrap();
    let _ = child.wait();
}

fn touch(path: &Path) {
    fs::write(path, "").unwrap();
}

fn waiting(desk: &Helpdesk, what: &str) -> impl FnMut() -> bool {
    let path = desk.path().join(format!("{what}.waiting"));
    move || path.exists()
}

const LONG: Duration = Duration::from_secs(90);

/// `retry`, as a timer runs it, until nothing is left in the spool and
/// every row is finished. One pass is not always enough: a killed
/// handler's child may still hold its message for a moment (a busy
/// machine schedules its death late), and a pass leaves held messages to
/// the next one.
fn settle(desk: &Helpdesk) {
    let said = std::cell::RefCell::new(String::new());
    wait_or(
        "every row to finish",
        LONG,
        &mut || {
            let out = exec(desk.command(&["retry"]), b"");
            assert_eq!(out.code, 0, "{}", out.stderr);
            *said.borrow_mut() = out.stderr;
            spool(desk).is_empty() && desk.log_rows().iter().all(|r| r["state"] == "finished")
        },
        &|| format!("{}\n{:#?}", said.borrow(), desk.log_rows()),
    );
}

/// Opens the gates of requests 2 and 1, lets request 1's `run` (`first`)
/// end, and retries: request 2 is done, and each started once.
fn both_run_once(desk: &Helpdesk, count: &Path, first: Child) {
    touch(&desk.path().join("gate-2"));
    touch(&desk.path().join("gate-1"));
    assert!(first.wait_with_output().unwrap().status.success());
    settle(desk);
    assert_eq!(row_of(desk, 2).unwrap()["outcome"], "done");
    assert_eq!((started(count, 1), started(count, 2)), (1, 1));
}

#[test]
fn issue_14_run_killed_in_each_state_loses_nothing_and_starts_nothing_twice() {
    let (desk, count) = kill_desk();
    // Claimed: request 2 waits for the one slot, which request 1 holds.
    let first = start(&desk, &request(1));
    wait_for("request 1 to run", LONG, waiting(&desk, "gate-1"));
    let second = start(&desk, &request(2));
    wait_for("request 2 to be claimed", LONG, || {
        row_of(&desk, 2).is_some_and(|r| r["state"] == "claimed")
    });
    kill(second);
    both_run_once(&desk, &count, first);

    // Running: killed while its playbook runs.
    killed_while_running(&desk, &count, 3, || start(&desk, &request(3)));
    // Finished but not archived: killed while its reply is being sent.
    killed_while_replying(&desk, &count, 4, || start(&desk, &request(4)));
    assert_eq!(desk.log_rows().len(), 4, "one row each, nothing lost");
    // Spooled: killed before its claim.
    killed_while_spooled(&desk, &count, 5);
}

/// Kills the `run` of request `n` while its message is spooled and not yet
/// claimed (the journal is held, so nothing can claim it), then retries:
/// done, started once; the MTA's redelivery of it is a duplicate.
fn killed_while_spooled(desk: &Helpdesk, count: &Path, n: usize) {
    let lock = JournalLock::take(&desk.path().join("state/journal.sqlite"));
    let message = request(n);
    let run = start(desk, &message);
    wait_for("the message to be spooled", LONG, || spool(desk).len() == 1);
    // Deciding, then waiting for the journal: still only spooled.
    std::thread::sleep(Duration::from_millis(500));
    kill(run);
    // Its deciding child dies with it (it follows its supervisor).
    std::thread::sleep(Duration::from_millis(200));
    drop(lock);
    assert!(row_of(desk, n).is_none(), "never claimed");
    assert_eq!(spool(desk).len(), 1, "still spooled");
    touch(&desk.path().join(format!("gate-{n}")));
    settle(desk);
    assert_eq!(row_of(desk, n).unwrap()["outcome"], "done");
    assert_eq!(started(count, n), 1);
    // The MTA saw its delivery die and brings the message again.
    let again = exec(desk.command(&["run"]), &message);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let rows: Vec<Value> = desk
        .log_rows()
        .into_iter()
        .filter(|r| r["sender"] == format!("user{n}@example.com").as_str())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows[0]["duplicate_of"].is_i64(), "{rows:#?}");
    assert_eq!(started(count, n), 1, "never started twice");
}

/// Kills the handler of request `n` (`handler()` starts it) once its
/// playbook runs, then retries: the outcome is unknown, and the playbook
/// started once.
fn killed_while_running(desk: &Helpdesk, count: &Path, n: usize, handler: impl FnOnce() -> Child) {
    let child = handler();
    let gate = format!("gate-{n}");
    wait_for("the playbook to run", LONG, waiting(desk, &gate));
    kill(child);
    touch(&desk.path().join(gate));
    settle(desk);
    let row = row_of(desk, n).unwrap();
    assert_eq!(row["outcome"], "unknown", "{row}");
    assert_eq!(started(count, n), 1);
}

/// Kills the handler of request `n` once its outcome is journaled, while
/// its reply is being sent, then retries: done, archived, started once.
fn killed_while_replying(desk: &Helpdesk, count: &Path, n: usize, handler: impl FnOnce() -> Child) {
    let hold = desk.path().join("hold-mail");
    touch(&hold);
    touch(&desk.path().join(format!("gate-{n}")));
    let child = handler();
    wait_for("the reply to be sent", LONG, waiting(desk, "hold-mail"));
    assert_eq!(row_of(desk, n).unwrap()["state"], "finished");
    assert!(!spool(desk).is_empty(), "not archived yet");
    kill(child);
    fs::remove_file(&hold).unwrap();
    fs::remove_file(desk.path().join("hold-mail.waiting")).unwrap();
    settle(desk);
    let row = row_of(desk, n).unwrap();
    assert_eq!(row["outcome"], "done", "{row}");
    assert!(
        row["spool_path"]
            .as_str()
            .is_some_and(|p| p.contains("/archive/")),
        "{row}"
    );
    assert_eq!(started(count, n), 1);
}

/// Puts request `n` into the spool as a `run` that died before its claim
/// leaves it.
fn spooled(desk: &Helpdesk, n: usize) {
    use std::os::unix::fs::PermissionsExt;
    let spool = desk.path().join("state/spool");
    fs::create_dir_all(&spool).unwrap();
    fs::set_permissions(desk.path().join("state"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(
        spool.join(format!("20261201T00000000000{n}Z-{n}-0000000{n}.eml")),
        request(n),
    )
    .unwrap();
}

#[test]
fn issue_14_retry_killed_in_each_state_loses_nothing_and_starts_nothing_twice() {
    let (desk, count) = kill_desk();
    // Spooled, then claimed: retry takes request 2 and waits for the slot
    // that request 1 (a run) holds.
    let first = start(&desk, &request(1));
    wait_for("request 1 to run", LONG, waiting(&desk, "gate-1"));
    spooled(&desk, 2);
    let retry = start_retry(&desk);
    wait_for("request 2 to be claimed", LONG, || {
        row_of(&desk, 2).is_some_and(|r| r["state"] == "claimed")
    });
    kill(retry);
    assert_eq!(spool(&desk).len(), 2, "both messages still spooled");
    both_run_once(&desk, &count, first);

    // Running, then finished but not archived.
    killed_while_running(&desk, &count, 3, || {
        spooled(&desk, 3);
        start_retry(&desk)
    });
    killed_while_replying(&desk, &count, 4, || {
        spooled(&desk, 4);
        start_retry(&desk)
    });
    assert!(spool(&desk).is_empty());
    assert_eq!(desk.log_rows().len(), 4, "one row each, nothing lost");
}

#[test]
fn issue_14_a_request_over_the_run_limit_is_refused_without_waiting_for_a_slot() {
    let (desk, count) = kill_desk();
    let desk = desk.adding("limits: {runs_per_sender_per_hour: 1}\n");
    // user1's first request holds the only playbook slot...
    let first = start(&desk, &request(1));
    wait_for("request 1 to run", LONG, waiting(&desk, "gate-1"));
    // ... and its second, over the limit, is refused meanwhile.
    let second = start(
        &desk,
        &mail("user1@example.com", "quota", "more for me by 9 gb"),
    );
    wait_for("the second request to be refused", LONG, || {
        desk.log_rows().iter().any(|r| r["outcome"] == "limited")
    });
    assert_eq!(row_of(&desk, 1).unwrap()["outcome"], "limited");
    assert!(second.wait_with_output().unwrap().status.success());
    touch(&desk.path().join("gate-1"));
    assert!(first.wait_with_output().unwrap().status.success());
    assert_eq!((started(&count, 1), started(&count, 9)), (1, 0));
}
