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

use crate::support::dovecot::Dovecot;
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

/// `helpdesk fetch` (watching), its log in `fetch.log` in the folder
/// (`fetch_log`: with times and levels), for the assertion messages.
fn start_fetch(desk: &Helpdesk) -> Child {
    let log = desk.path().join("fetch.log");
    desk.command(&["-vv", "--log-file", log.to_str().unwrap(), "fetch"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn fetch_log(desk: &Helpdesk) -> String {
    fs::read_to_string(desk.path().join("fetch.log")).unwrap_or_default()
}

/// Stops a watching `fetch` with SIGTERM, as systemd does, and returns
/// its status and what it logged.
fn stop_fetch(desk: &Helpdesk, mut child: Child) -> (Option<i32>, String) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    (status.code(), fetch_log(desk))
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
    let (code, stderr) = stop_fetch(&desk, fetch);
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
fn issue_17_two_fetches_at_once_take_each_message_once_and_both_exit_0() {
    let root = tempfile::tempdir().unwrap();
    let dir = maildir(root.path());
    for n in 0..5 {
        drop_in(&dir, &request(&format!("overlap{n}")));
    }
    let desk = maildir_desk(&dir);
    let spawn = || {
        desk.command(&["-v", "fetch", "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A cron job that overlaps the one before it is the same.
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = desk.log_rows();
    assert_eq!(outcomes(&rows), vec!["done"; 5], "no duplicates: {rows:#?}");
    assert_eq!(names(&dir.join("cur")).len(), 5);
    assert_eq!(desk.run_logs().len(), 5);
}

#[test]
fn issue_17_fetch_without_sources_is_a_config_error() {
    let desk = Helpdesk::from_defaults();
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("no sources: to read"), "{}", out.stderr);
}

/// A helpdesk folder reading `dovecot`'s INBOX over `url` (implicit TLS
/// unless said), with the test CA, the right password in imap.secret
/// (0600), echo playbooks and `extra` config lines.
fn imap_desk(dovecot: &Dovecot, url: &str, password: &str, extra: &str) -> Helpdesk {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let secret = desk.path().join("imap.secret");
    fs::write(&secret, format!("{password}\n")).unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    desk.adding(&format!(
        "{extra}sources:\n  - name: inbox\n    imap:\n      url: {url}\n      username: {}\n      password_file: imap.secret\n      ca_file: {}\n      timeout: 10s\n",
        dovecot.user(),
        dovecot.ca_file().display()
    ))
}

/// The journal's names of the messages taken from `source`.
fn uids_of(rows: &[Value]) -> Vec<String> {
    intakes(rows)
}

#[test]
fn issue_17_fetch_once_handles_every_message_appended_before_and_moves_each_to_done() {
    let dovecot = Dovecot::start();
    let mut body = String::from("more for me by 1 gb\n");
    while body.len() < 300 * 1024 {
        body.push_str("a long pasted report line that makes this message larger than the limit\n");
    }
    for n in 0..3 {
        dovecot.append("INBOX", &request(&format!("imap{n}")));
    }
    // Over limits.message_size: fetched only up to it, and handled as a
    // message cut there (it runs nothing).
    dovecot.append("INBOX", &mail("big@example.com", "quota", &body));
    let desk = imap_desk(
        &dovecot,
        &dovecot.imaps_url("INBOX"),
        dovecot.password(),
        "limits: {message_size: 100KiB}\n",
    );
    // What the operator's guide shows: helpdesk --config ... fetch --once
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, dovecot.log());
    assert_eq!(dovecot.count("INBOX"), 0);
    // The default done folder, Helpdesk/Done, in Dovecot's own separator.
    assert_eq!(dovecot.count("Helpdesk.Done"), 4, "{}", dovecot.log());
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let done = rows.iter().filter(|r| r["outcome"] == "done").count();
    assert_eq!(done, 3, "{rows:#?}");
    assert_eq!(desk.run_logs().len(), 3, "the cut message ran nothing");
    let names = uids_of(&rows);
    assert!(names.iter().all(|n| n.starts_with("inbox/")), "{names:?}");
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{names:?}");
    // Moved unread (BODY.PEEK): the mailbox's reader sees them as new.
    assert!(
        dovecot
            .flags("Helpdesk.Done")
            .iter()
            .all(|f| !f.contains("\\Seen"))
    );
    let again = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(desk.log_rows().len(), 4, "nothing taken twice");
    // STARTTLS works the same way.
    dovecot.append("INBOX", &request("starttls"));
    let starttls = imap_desk(
        &dovecot,
        &dovecot.starttls_url("INBOX"),
        dovecot.password(),
        "",
    );
    let out = exec(starttls.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, dovecot.log());
    assert_eq!(outcomes(&starttls.log_rows()), vec!["done"]);
    assert_eq!(dovecot.count("Helpdesk.Done"), 5);
}

#[test]
fn issue_17_with_fetch_running_a_new_message_is_taken_within_two_seconds_through_idle() {
    let dovecot = Dovecot::start();
    let desk = imap_desk(
        &dovecot,
        &dovecot.imaps_url("INBOX"),
        dovecot.password(),
        "",
    );
    let fetch = start_fetch(&desk);
    let metrics = desk.path().join("state/metrics.prom");
    wait_for("the first pass", Duration::from_secs(20), || {
        fs::read_to_string(&metrics)
            .is_ok_and(|m| m.contains("helpdesk_source_up{source=\"inbox\"} 1"))
    });
    // IDLE has begun: poll_interval is 5 minutes, so only IDLE can be
    // this quick.
    std::thread::sleep(Duration::from_millis(500));
    dovecot.append("INBOX", &request("idle"));
    let appended = Instant::now();
    wait_for(
        "the new message's journal row",
        Duration::from_secs(10),
        || !desk.log_rows().is_empty(),
    );
    let taken = appended.elapsed();
    wait_for("its move to done", Duration::from_secs(60), || {
        dovecot.count("Helpdesk.Done") == 1
    });
    assert_eq!(outcomes(&desk.log_rows()), vec!["done"]);
    let (code, stderr) = stop_fetch(&desk, fetch);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        taken < Duration::from_secs(2),
        "taken {taken:?} after the append"
    );
}

#[test]
fn issue_17_fetch_killed_between_the_spool_write_and_the_move_then_restarted_handles_each_message_once()
 {
    let dovecot = Dovecot::start();
    let desk = imap_desk(
        &dovecot,
        &dovecot.imaps_url("INBOX"),
        dovecot.password(),
        "",
    );
    // Each run takes a while, so that the kill finds one running.
    let slow = crate::support::echo_playbook().replace(
        "  tasks:\n",
        "  tasks:\n    - name: Take a while\n      ansible.builtin.pause: {seconds: 2}\n",
    );
    let desk = desk.file("playbooks/storage.yaml", &slow);
    for n in 0..4 {
        dovecot.append("INBOX", &request(&format!("kill{n}")));
    }
    for round in 0..3 {
        let mut fetch = desk
            .command(&["fetch", "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed once a message is spooled and claimed but not yet moved.
        let before = desk_rows(&desk);
        wait_for("a message in hand", Duration::from_secs(60), || {
            let rows = desk_rows(&desk);
            rows.len() > before.len() || rows.iter().any(|r| r["state"] != "finished")
        });
        std::thread::sleep(Duration::from_millis(300 * round));
        fetch.kill().unwrap();
        fetch.wait().unwrap();
    }
    // Restarted until the mailbox is empty.
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dovecot.count("INBOX"), 0, "{}", out.stderr);
    assert_eq!(dovecot.count("Helpdesk.Done"), 4);
    let rows = desk.log_rows();
    let originals: Vec<&Value> = rows
        .iter()
        .filter(|r| r["duplicate_of"].is_null())
        .collect();
    assert_eq!(originals.len(), 4, "one row each: {rows:#?}");
    assert!(
        originals.iter().all(|r| r["state"] == "finished"),
        "{rows:#?}"
    );
    // No playbook started twice for one message: at most one run each,
    // and a run cut by the kill is `unknown`, never run again by itself.
    assert!(desk.run_logs().len() <= 4, "{:?}", desk.run_logs());
    for row in &originals {
        let outcome = row["outcome"].as_str().unwrap();
        assert!(outcome == "done" || outcome == "unknown", "{rows:#?}");
    }
    assert!(originals.iter().any(|r| r["outcome"] == "done"));
}

/// Every row, oldest first, or none when there is no journal yet.
fn desk_rows(desk: &Helpdesk) -> Vec<Value> {
    if desk.path().join("state/journal.sqlite").exists() {
        desk.log_rows()
    } else {
        Vec::new()
    }
}

#[test]
fn issue_17_dovecot_stopped_and_restarted_under_a_running_fetch_it_connects_again_and_goes_on() {
    let mut dovecot = Dovecot::start();
    // Down for longer than alert_after: one error, however many attempts.
    let desk = imap_desk(
        &dovecot,
        &dovecot.imaps_url("INBOX"),
        dovecot.password(),
        "",
    )
    .adding("    alert_after: 2s\n");
    let fetch = start_fetch(&desk);
    let metrics = desk.path().join("state/metrics.prom");
    let up = |value: u8| {
        let wanted = format!("helpdesk_source_up{{source=\"inbox\"}} {value}");
        let metrics = metrics.clone();
        move || fs::read_to_string(&metrics).is_ok_and(|m| m.contains(&wanted))
    };
    wait_for("the first pass", Duration::from_secs(20), up(1));
    dovecot.stop();
    crate::support::wait_or(
        "the source down",
        Duration::from_secs(20),
        &mut up(0),
        &|| {
            let ss = std::process::Command::new("ss")
                .args(["-tnp"])
                .output()
                .unwrap();
            format!(
                "{}\n{}",
                fetch_log(&desk),
                String::from_utf8_lossy(&ss.stdout)
            )
        },
    );
    let log = exec(desk.command(&["log"]), b"");
    assert!(
        log.stdout.contains("source inbox: unreachable since"),
        "{}",
        log.stdout
    );
    wait_for(
        "the error after alert_after",
        Duration::from_secs(30),
        || fetch_log(&desk).contains("for more than 2s"),
    );
    // A few more attempts, quietly.
    std::thread::sleep(Duration::from_secs(4));
    dovecot.restart();
    dovecot.append("INBOX", &request("after-restart"));
    wait_for(
        "the message after the restart",
        Duration::from_secs(60),
        || dovecot.count("Helpdesk.Done") == 1,
    );
    assert_eq!(outcomes(&desk.log_rows()), vec!["done"]);
    let (code, stderr) = stop_fetch(&desk, fetch);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("source inbox: unreachable"), "{stderr}");
    assert!(stderr.contains("source inbox: reachable again"), "{stderr}");
    let errors = stderr.lines().filter(|l| l.contains("ERROR")).count();
    assert_eq!(errors, 1, "{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("source inbox"))
        .count();
    assert_eq!(warnings, 1, "one warning when it went down: {stderr}");
}

#[test]
fn issue_17_a_wrong_password_is_a_clear_error_a_health_entry_and_exit_77() {
    let dovecot = Dovecot::start();
    dovecot.append("INBOX", &request("wrong-password"));
    let desk = imap_desk(
        &dovecot,
        &dovecot.imaps_url("INBOX"),
        "not-the-password",
        "",
    );
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 77, "{}", out.stderr);
    let said = format!(
        "source inbox: login: the server refused the login of {}",
        dovecot.user()
    );
    assert!(out.stderr.contains(&said), "{}", out.stderr);
    assert!(!out.stderr.contains("not-the-password"), "{}", out.stderr);
    assert_eq!(dovecot.count("INBOX"), 1, "nothing taken");
    let log = exec(desk.command(&["log"]), b"");
    assert!(
        log.stdout.contains("source inbox: login since"),
        "{}",
        log.stdout
    );
    assert!(
        log.stdout.contains("AUTHENTICATIONFAILED"),
        "{}",
        log.stdout
    );
    let metrics = fs::read_to_string(desk.path().join("state/metrics.prom")).unwrap();
    assert!(
        metrics.contains("helpdesk_source_up{source=\"inbox\"} 0"),
        "{metrics}"
    );
    // check --online says the same, as an error.
    let check = exec(desk.command(&["check", "--online"]), b"");
    assert_eq!(check.code, 78, "{}{}", check.stdout, check.stderr);
    let text = format!("{}{}", check.stdout, check.stderr);
    assert!(
        text.contains("error: sources inbox: login: the server refused"),
        "{text}"
    );
    // With the right password, check --online logs in.
    let right = imap_desk(
        &dovecot,
        &dovecot.imaps_url("INBOX"),
        dovecot.password(),
        "",
    );
    let check = exec(right.command(&["check", "--online"]), b"");
    let text = format!("{}{}", check.stdout, check.stderr);
    assert!(
        text.contains("sources inbox: logged in to localhost:"),
        "{text}"
    );
    assert!(text.contains("INBOX holds 1 message(s)"), "{text}");
}

#[test]
fn issue_17_a_message_quarantined_from_imap_goes_to_the_failed_folder() {
    let dovecot = Dovecot::start();
    let mut body = String::from("Please increase my storage quota by 5 GB.\n");
    while body.len() < 8 * 1024 * 1024 {
        body.push_str("line of a long pasted report, share /srv/project is at 91% of its quota\n");
    }
    dovecot.append("INBOX", &mail("big@example.com", "storage quota", &body));
    let desk = imap_desk(
        &dovecot,
        &dovecot.imaps_url("INBOX"),
        dovecot.password(),
        "limits: {decision_cpu: 50ms}\n",
    );
    let out = exec(desk.command(&["fetch", "--once"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Helpdesk.Failed"), 1, "{}", dovecot.log());
    assert_eq!(outcomes(&desk.log_rows()), vec!["quarantined"]);
}
