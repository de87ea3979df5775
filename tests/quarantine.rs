//! Issue 12: the decision budget, through the built binary, the real
//! ansible-playbook and a real SMTP server. A mail whose decision goes over
//! `limits.decision_memory`, `decision_cpu` or `decision_wall` is
//! quarantined: journaled with its reason, moved to `state/quarantine/`,
//! answered when its header proves the sender (without quoting it), never
//! tried again, and the MTA gets 0; the messages behind it go on.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, exec, mail};

const TRUST: &str = "authentication: {authserv_id: [mx.example.com], require: dmarc}\naccess:\n  - {requests: ['*'], senders: ['*@example.com']}\n";

/// A word that appears only in the poison mails, never in a reply.
const MARKER: &str = "Kestrel";

/// What the trusted MX puts on top of a mail whose DMARC check passed.
fn passed(domain: &str) -> String {
    format!(
        "Authentication-Results: mx.example.com; dkim=pass header.d={domain}; dmarc=pass (p=reject) header.from={domain}\r\nReceived: from out.{domain} (out.{domain} [192.0.2.7]) by mx.example.com (Postfix) with ESMTPS id 4711; Sun, 22 Nov 2026 09:00:00 +0000\r\n"
    )
}

fn authenticated(from: &str, subject: &str, body: &str) -> Vec<u8> {
    let domain = from.rsplit('@').next().unwrap_or_default();
    let mut raw = passed(domain).into_bytes();
    raw.extend(mail(from, subject, body));
    raw
}

/// A legitimate mail of about `size` bytes: a storage request followed
/// by a long plain-text report, the kind a monitoring job pastes in.
fn big(from: &str, authentic: bool, size: usize) -> Vec<u8> {
    let mut body = String::from("Please increase my storage quota by 5 GB.\n\nThe report:\n");
    let mut n = 0;
    while body.len() < size {
        body.push_str(&format!(
            "{MARKER} line {n}: share /srv/project{} is at {}% of its quota, {} files changed today\n",
            n % 97,
            60 + n % 40,
            n * 7 % 1000
        ));
        n += 1;
    }
    let subject = format!("storage quota {MARKER}");
    if authentic {
        authenticated(from, &subject, &body)
    } else {
        mail(from, &subject, &body)
    }
}

/// Echo playbooks, real trust settings, replies to `server`, and `extra`
/// config lines (the limits under test).
fn desk(server: &SmtpServer, extra: &str) -> Helpdesk {
    Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(server)
        .trusting(TRUST)
        .adding(extra)
}

/// The files in `state/<folder>`, sorted.
fn files(desk: &Helpdesk, folder: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(desk.path().join("state").join(folder)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Puts `raw` into the spool as a message whose `run` died before it
/// claimed it (the OOM killer, a power cut): a leftover for `retry`.
fn leftover(desk: &Helpdesk, name: &str, raw: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let spool = desk.path().join("state/spool");
    fs::create_dir_all(&spool).unwrap();
    fs::set_permissions(desk.path().join("state"), fs::Permissions::from_mode(0o700)).unwrap();
    let path = spool.join(name);
    fs::write(&path, raw).unwrap();
    path
}

fn one_quarantined(rows: &[Value]) -> &Value {
    let quarantined: Vec<&Value> = rows
        .iter()
        .filter(|r| r["outcome"] == "quarantined")
        .collect();
    assert_eq!(quarantined.len(), 1, "{rows:#?}");
    let row = quarantined[0];
    assert_eq!(row["state"], "finished", "{row}");
    assert_eq!(row["subject"], "", "the subject is never read: {row}");
    assert_eq!(row["request_type"], Value::Null, "{row}");
    assert_eq!(row["started_at"], Value::Null, "nothing ran: {row}");
    row
}

#[test]
fn a_mail_over_the_memory_budget_is_quarantined_answered_once_and_a_duplicate_after() {
    let server = SmtpServer::plain();
    let desk = desk(
        &server,
        "limits: {decision_memory: 64MiB, message_size: 64MiB}\n",
    );

    // An ordinary request decides well within the budget and runs.
    let small = authenticated("alice@example.com", "quota", "more for me by 1 gb");
    let out = desk.run(&small);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received().unwrap()["targets"], "alice");

    // 40 MiB of plain text (limits.message_size is raised for it): the
    // message alone, read for its decision, takes most of the 64 MiB.
    let poison = big("admin@example.com", true, 40 * 1024 * 1024);
    let out = desk.run(&poison);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(files(&desk, "spool").is_empty(), "the spool is empty");
    let quarantine = files(&desk, "quarantine");
    assert_eq!(quarantine.len(), 1, "{quarantine:?}");
    assert_eq!(fs::read(&quarantine[0]).unwrap(), poison, "kept as it came");

    let rows = desk.log_rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let row = one_quarantined(&rows);
    assert_quarantined_row(row, &quarantine[0]);
    assert_eq!(desk.run_logs().len(), 1, "only the small request ran");

    // The sender is told, and nothing of the mail is quoted.
    assert_told_quoting_nothing(&server, &poison);

    // log and show say so; the metrics count it.
    assert_log_show_and_metrics_say_so(&desk, row);

    // The same bytes again (an MTA that redelivers): a duplicate, not a
    // second quarantine, and no second reply.
    let out = desk.run(&poison);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(rows[0]["outcome"], "duplicate");
    assert_eq!(rows[0]["duplicate_of"], one_quarantined(&rows)["id"]);
    assert!(files(&desk, "spool").is_empty());
    assert_eq!(files(&desk, "quarantine"), quarantine);
    assert_eq!(server.received().len(), 2);

    // An unauthenticated poison mail is quarantined too, but not answered.
    let forged = big("mallory@example.com", false, 40 * 1024 * 1024);
    let out = desk.run(&forged);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = desk.log_rows();
    assert_eq!(rows[0]["outcome"], "quarantined", "{rows:#?}");
    assert_eq!(rows[0]["reply"], "none: the sender is not authenticated");
    assert_eq!(files(&desk, "quarantine").len(), 2);
    assert_eq!(server.received().len(), 2, "no reply to a forged sender");
}

/// The journal row of the quarantined mail, kept at `kept`.
fn assert_quarantined_row(row: &Value, kept: &Path) {
    assert_eq!(
        row["reason"],
        "the decision used more than 64 MiB of memory"
    );
    assert_eq!(row["sender"], "admin@example.com");
    assert_eq!(row["spool_path"].as_str(), Some(kept.to_str().unwrap()));
    assert!(
        row["authentication"]
            .as_str()
            .unwrap()
            .starts_with("authenticated: dmarc=pass"),
        "the header alone proves the sender: {row}"
    );
    assert!(
        row["reply"]
            .as_str()
            .unwrap()
            .starts_with("sent: quarantined reply to admin@example.com"),
        "{row}"
    );
}

/// The sender of `poison` got the quarantine reply, quoting nothing of it.
fn assert_told_quoting_nothing(server: &SmtpServer, poison: &[u8]) {
    let replies = server.received();
    assert_eq!(replies.len(), 2, "a result and the quarantine reply");
    let reply = &replies[1];
    assert_eq!(reply.envelope["rcpt_tos"][0], "admin@example.com");
    assert_eq!(
        reply.header("Subject").as_deref(),
        Some("Re: your mail to the helpdesk")
    );
    let message_id = String::from_utf8_lossy(poison)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_owned))
        .unwrap();
    assert_eq!(reply.header("In-Reply-To"), Some(message_id));
    reply.assert_body_says("could not be read: the decision used more than 64 MiB of memory");
    assert!(!reply.raw.contains(MARKER), "{}", reply.raw);
    assert!(!reply.raw.contains("storage quota"), "{}", reply.raw);
}

/// `log` and `show` say the mail of `row` was quarantined, and why; the
/// metrics count it.
fn assert_log_show_and_metrics_say_so(desk: &Helpdesk, row: &Value) {
    let out = exec(desk.command(&["log", "--outcome", "quarantined"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let table: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(table.len(), 2, "{}", out.stdout);
    assert!(
        table[1].contains("quarantined")
            && table[1].contains("the decision used more than 64 MiB of memory"),
        "{}",
        out.stdout
    );
    let out = exec(desk.command(&["show", &row["id"].to_string()]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("outcome         quarantined\n")
            && out
                .stdout
                .contains("reason          the decision used more than 64 MiB of memory\n"),
        "{}",
        out.stdout
    );
    let metrics = fs::read_to_string(desk.path().join("state/metrics.prom")).unwrap();
    assert!(
        metrics.contains("helpdesk_messages_total{request_type=\"\",outcome=\"quarantined\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_mail_over_the_cpu_budget_is_quarantined() {
    let server = SmtpServer::plain();
    // Far below what reading 10 MiB takes, built with or without
    // optimisation: the supervisor watches budgets below a second itself.
    let desk = desk(&server, "limits: {decision_cpu: 50ms}\n");
    let poison = big("admin@example.com", true, 10 * 1024 * 1024 - 4096);
    let out = desk.run(&poison);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(files(&desk, "spool").is_empty());
    assert_eq!(files(&desk, "quarantine").len(), 1);
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        one_quarantined(&rows)["reason"],
        "the decision used more than 50 ms of CPU"
    );
    assert_eq!(desk.run_logs().len(), 0);
    let body = server.only().body();
    assert!(body.contains("more than 50 ms of CPU"), "{body}");
}

#[test]
fn in_queue_mode_retry_quarantines_a_poison_message_and_handles_the_two_behind_it() {
    let server = SmtpServer::plain();
    let desk = desk(
        &server,
        "delivery: queue\nlimits: {decision_memory: 64MiB, message_size: 64MiB}\n",
    );
    // Spooled in this order by runs that died before their claim.
    let poison = leftover(
        &desk,
        "20261201T000000000001Z-1-00000001.eml",
        &big("admin@example.com", true, 40 * 1024 * 1024),
    );
    leftover(
        &desk,
        "20261201T000000000002Z-2-00000002.eml",
        &authenticated("bob@example.com", "quota", "more for me by 2 gb"),
    );
    leftover(
        &desk,
        "20261201T000000000003Z-3-00000003.eml",
        &authenticated("carol@example.com", "quota", "more for me by 3 gb"),
    );
    let out = exec(desk.command(&["-v", "retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("3 message(s) handled from the spool"),
        "{}",
        out.stderr
    );
    assert!(
        files(&desk, "spool").is_empty(),
        "{:?}",
        files(&desk, "spool")
    );
    assert_eq!(
        files(&desk, "quarantine"),
        [desk
            .path()
            .join("state/quarantine")
            .join(poison.file_name().unwrap())]
    );
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(
        one_quarantined(&rows)["reason"],
        "the decision used more than 64 MiB of memory"
    );
    let mut done: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r["outcome"] == "done")
        .map(|r| {
            (
                r["sender"].as_str().unwrap().to_owned(),
                r["vars"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    done.sort();
    assert_eq!(done.len(), 2, "{rows:#?}");
    assert_eq!(done[0].0, "bob@example.com");
    assert!(done[0].1.contains("\"amount\":2"), "{}", done[0].1);
    assert_eq!(done[1].0, "carol@example.com");
    assert!(done[1].1.contains("\"amount\":3"), "{}", done[1].1);
    assert_eq!(desk.run_logs().len(), 2, "both playbooks ran, once each");
    let mut told: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.envelope["rcpt_tos"][0].as_str().unwrap().to_owned())
        .collect();
    told.sort();
    assert_eq!(
        told,
        ["admin@example.com", "bob@example.com", "carol@example.com"]
    );
}

#[test]
fn a_decision_killed_at_the_wall_clock_limit_is_quarantined_and_not_retried() {
    let server = SmtpServer::plain();
    // Only the wall clock can stop it: the CPU budget is a minute.
    let desk = desk(
        &server,
        "limits: {decision_cpu: 60s, decision_wall: 100ms}\n",
    );
    let poison = leftover(
        &desk,
        "20261201T000000000001Z-1-00000001.eml",
        &big("admin@example.com", true, 10 * 1024 * 1024 - 4096),
    );
    let out = exec(desk.command(&["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(files(&desk, "spool").is_empty());
    let quarantined = files(&desk, "quarantine");
    assert_eq!(
        quarantined,
        [desk
            .path()
            .join("state/quarantine")
            .join(poison.file_name().unwrap())]
    );
    let rows = desk.log_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        one_quarantined(&rows)["reason"],
        "the decision took longer than 100 ms"
    );
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(server.received().len(), 1);

    // A second retry finds nothing: no second attempt, no second reply.
    exec(desk.command(&["-v", "retry"]), b"").assert_said(0, "0 message(s) handled from the spool");
    assert_eq!(desk.log_rows(), rows);
    assert_eq!(files(&desk, "quarantine"), quarantined);
    assert!(files(&desk, "spool").is_empty());
    assert_eq!(server.received().len(), 1);
    assert_eq!(desk.run_logs().len(), 0);
    assert!(!Path::new(&poison).exists());
}
