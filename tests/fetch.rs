//! Issue 17: mailboxes as intake. `helpdesk fetch` against a real Dovecot
//! (Debian's dovecot-imapd, a throw-away instance on loopback with TLS
//! from a test CA, `support::dovecot`) and against Maildirs, through the
//! built binary and the real ansible-playbook: the pipe's contract (spool
//! and claim before the move, the move only after the outcome, exactly
//! once across SIGKILL), IDLE and inotify, reconnection, health.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Helpdesk, exec, mail, outcomes, wait_for};

/// A Maildir under `root`, with its three folders.
fn maildir(root: &Path) -> PathBuf {
    let dir = root.join("Maildir");
    for part in ["new", "cur", "tmp"] {
        fs::create_dir_all(dir.join(part)).unwrap();
    }
    dir
}

/// Delivers `raw` into the Maildir as an MDA does: written in tmp/, then
/// renamed into new/. Returns its name.
fn drop_in(dir: &Path, raw: &[u8]) -> String {
    let name = format!(
        "{}.M{}P{}.test",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        crate::support::unique_id().replace(['@', '.', '-'], ""),
        std::process::id()
    );
    fs::write(dir.join("tmp").join(&name), raw).unwrap();
    fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name)).unwrap();
    name
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A quota request from `user`, different each time.
fn request(user: &str) -> Vec<u8> {
    mail(
        &format!("{user}@example.com"),
        "quota",
        "more for me by 1 gb",
    )
}

fn intakes(rows: &[Value]) -> Vec<String> {
    let mut intakes: Vec<String> = rows
        .iter()
        .map(|r| r["intake"].as_str().unwrap_or("-").to_owned())
        .collect();
    intakes.sort();
    intakes
}

/// `helpdesk fetch` (watching), its output kept for the assertion messages.
fn start_fetch(desk: &Helpdesk) -> Child {
    desk.command(&["-v", "fetch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Stops a watching `fetch` with SIGTERM, as systemd does, and returns
/// its status and stderr.
fn stop_fetch(child: Child) -> (Option<i32>, String) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn maildir_desk(dir: &Path) -> Helpdesk {
    Helpdesk::from_defaults()
        .with_echo_playbooks()
        .adding(&format!(
            "sources:\n  - name: drop\n    maildir: {}\n",
            dir.display()
        ))
}

#[test]
fn issue_17_fetch_once_takes_a_maildirs_new_mail_once_each_and_moves_it_to_cur_as_seen() {
    let root = tempfile::tempdir().unwrap();
    let dir = maildir(root.path());
    let dropped: Vec<String> = (0..3)
        .map(|n| drop_in(&dir, &request(&format!("m{n}"))))
        .collect();
    let desk = maildir_desk(&dir);
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        names(&dir.join("new")).is_empty(),
        "{:?}",
        names(&dir.join("new"))
    );
    let mut moved: Vec<String> = dropped.iter().map(|n| format!("{n}:2,S")).collect();
    moved.sort();
    assert_eq!(names(&dir.join("cur")), moved);
    let rows = desk.log_rows();
    assert_eq!(outcomes(&rows), vec!["done"; 3]);
    let mut expected: Vec<String> = dropped
        .iter()
        .map(|n| format!("drop/maildir/{n}"))
        .collect();
    expected.sort();
    assert_eq!(intakes(&rows), expected);
    assert_eq!(desk.run_logs().len(), 3, "one playbook run each");
    // Again: nothing new, nothing run, no duplicates journaled.
    let again = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(desk.log_rows().len(), 3);
    // The text log says the source was read.
    let log = exec(desk.command(&["log"]), b"");
    assert!(
        log.stdout.contains("source drop: reachable"),
        "{}",
        log.stdout
    );
}

#[test]
fn issue_17_a_watched_maildir_handles_a_new_message_within_two_seconds_and_stops_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let dir = maildir(root.path());
    let desk = maildir_desk(&dir);
    let fetch = start_fetch(&desk);
    // Settled: the first pass (an empty Maildir) is recorded.
    let metrics = desk.path().join("state/metrics.prom");
    wait_for("the first pass", Duration::from_secs(20), || {
        fs::read_to_string(&metrics)
            .is_ok_and(|m| m.contains("helpdesk_source_up{source=\"drop\"} 1"))
    });
    let name = drop_in(&dir, &request("watched"));
    let dropped = Instant::now();
    wait_for(
        "the new message's journal row",
        Duration::from_secs(2),
        || !desk.log_rows().is_empty(),
    );
    let picked_up = dropped.elapsed();
    wait_for("its move to cur/", Duration::from_secs(60), || {
        dir.join("cur").join(format!("{name}:2,S")).exists()
    });
    assert_eq!(outcomes(&desk.log_rows()), vec!["done"]);
    let (code, stderr) = stop_fetch(fetch);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("fetch: stopping"), "{stderr}");
    assert!(picked_up < Duration::from_secs(2), "{picked_up:?}");
}

#[test]
fn issue_17_a_quarantined_maildir_message_is_flagged_and_one_that_is_no_maildir_is_a_health_entry()
{
    let root = tempfile::tempdir().unwrap();
    let dir = maildir(root.path());
    let mut body = String::from("Please increase my storage quota by 5 GB.\n");
    while body.len() < 8 * 1024 * 1024 {
        body.push_str("line of a long pasted report, share /srv/project is at 91% of its quota\n");
    }
    let poison = drop_in(&dir, &mail("big@example.com", "storage quota", &body));
    let missing = root.path().join("nowhere");
    let desk = Helpdesk::from_defaults().with_echo_playbooks().adding(&format!(
        "limits: {{decision_cpu: 50ms}}\nsources:\n  - name: drop\n    maildir: {}\n  - name: gone\n    maildir: {}\n",
        dir.display(),
        missing.display()
    ));
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    // The one that is no Maildir makes it 69; the other was handled.
    assert_eq!(out.code, 69, "{}", out.stderr);
    assert!(
        out.stderr.contains("source gone: mailbox:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("no new/"), "{}", out.stderr);
    assert_eq!(names(&dir.join("cur")), vec![format!("{poison}:2,FS")]);
    assert_eq!(outcomes(&desk.log_rows()), vec!["quarantined"]);
    let log = exec(desk.command(&["log"]), b"");
    assert!(
        log.stdout.contains("source gone: mailbox since"),
        "{}",
        log.stdout
    );
    assert!(
        log.stdout.contains("source drop: reachable"),
        "{}",
        log.stdout
    );
    let metrics = fs::read_to_string(desk.path().join("state/metrics.prom")).unwrap();
    assert!(
        metrics.contains("helpdesk_source_up{source=\"gone\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("helpdesk_source_failures{source=\"gone\"} 1"),
        "{metrics}"
    );
}

#[test]
fn issue_17_fetch_without_sources_is_a_config_error() {
    let desk = Helpdesk::from_defaults();
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("no sources: to read"), "{}", out.stderr);
}
