//! Issue 16: approvals by mail, through the built binary, a real SMTP
//! server on loopback and the real ansible-playbook. A request an
//! `approvals:` rule covers waits, nothing run, until the approvers the
//! rule names answer the approval request mail (authenticated, in its
//! thread, not the requester); a deny or an expiry ends it; two approvals
//! at once run it once; a waiting request delays nobody; and `pending`,
//! `approve` and `deny` do the same at the terminal.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::smtp::{Received, SmtpServer};
use crate::support::{Helpdesk, Output, exec, unique_id};

/// What the trusted MX writes above its own Received header for a mail
/// whose From passed DMARC.
const PASSED: &str = "Authentication-Results: mx.example.com; dmarc=pass (p=reject dis=none) header.from=example.com\r\n";
const MX_RECEIVED: &str = "Received: from out.example.com (out.example.com [192.0.2.7])\r\n\tby mx.example.com (Postfix) with ESMTPS id 4Zx1y2;\r\n\tSun, 22 Nov 2026 09:00:00 +0000 (UTC)\r\n";

/// A desk that trusts mx.example.com's DMARC verdict, lets everyone at
/// example.com ask for anything, counts its storage runs in `count`, and
/// makes storage requests wait under `rule` (a YAML flow mapping).
fn desk(server: &SmtpServer, rule: &str, extra: &str) -> (Helpdesk, PathBuf) {
    let desk = Helpdesk::from_defaults();
    let count = desk.path().join("count");
    let playbook = format!(
        "- name: Count the runs\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Count\n      ansible.builtin.shell: \"echo run >> {}\"\n",
        count.display()
    );
    let desk = desk
        .file("playbooks/storage.yaml", &playbook)
        .trusting(
            "authentication: {authserv_id: [mx.example.com], position: above, require: dmarc}\naccess:\n  - {requests: ['*'], senders: ['*@example.com']}\n",
        )
        .adding(&format!("approvals:\n  - {rule}\n{extra}"))
        .replying_to(server);
    (desk, count)
}

fn runs(count: &Path) -> usize {
    fs::read_to_string(count).map_or(0, |t| t.lines().count())
}

/// A mail from `from`; authenticated by the MX when `proven`; answering
/// `in_reply_to` when given; with `headers` added.
fn letter(
    from: &str,
    subject: &str,
    body: &str,
    reply: (bool, Option<&str>),
    headers: &str,
) -> Vec<u8> {
    let (proven, in_reply_to) = reply;
    let mut raw = String::new();
    if proven {
        raw.push_str(PASSED);
    }
    raw.push_str(MX_RECEIVED);
    raw.push_str(&format!(
        "From: {from}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}>\r\n",
        unique_id()
    ));
    if let Some(id) = in_reply_to {
        raw.push_str(&format!("In-Reply-To: {id}\r\nReferences: {id}\r\n"));
    }
    raw.push_str(headers);
    raw.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    raw.push_str(&body.replace('\n', "\r\n"));
    raw.push_str("\r\n");
    raw.into_bytes()
}

/// Alice's storage request, authenticated.
fn request() -> Vec<u8> {
    letter(
        "alice@example.com",
        "quota",
        "please raise my quota by 5 GB",
        (true, None),
        "",
    )
}

/// An answer from `from` to the approval request `id`, quoting it below.
fn answer(from: &str, id: Option<&str>, text: &str, proven: bool) -> Vec<u8> {
    let body = format!(
        "{text}\n\nOn Sun, 22 Nov 2026, helpdesk wrote:\n> Approval needed\n> To approve, reply with approve\n"
    );
    letter(from, "Re: Approval needed", &body, (proven, id), "")
}

fn delivered(desk: &Helpdesk, raw: &[u8]) -> Output {
    let out = desk.run(raw);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out
}

fn to(mail: &Received) -> String {
    mail.envelope["rcpt_tos"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The mails `server` got for `rcpt` whose Subject starts with `subject`.
fn mails_to(server: &SmtpServer, rcpt: &str, subject: &str) -> Vec<Received> {
    server
        .received()
        .into_iter()
        .filter(|m| to(m) == rcpt && m.header("Subject").is_some_and(|s| s.starts_with(subject)))
        .collect()
}

/// The Message-ID (with its angle brackets) of the approval request
/// mailed to `approver`.
fn approval_id(server: &SmtpServer, approver: &str) -> String {
    let mails = mails_to(server, approver, "Approval needed");
    assert_eq!(
        mails.len(),
        1,
        "{:?}",
        server
            .received()
            .iter()
            .map(|m| (to(m), m.header("Subject")))
            .collect::<Vec<_>>()
    );
    mails[0].header("Message-ID").unwrap()
}

/// The journal row of the first request (the one that waits).
fn first_row(desk: &Helpdesk) -> Value {
    desk.log_rows().last().cloned().unwrap()
}

fn state_of(desk: &Helpdesk) -> (String, String) {
    let row = first_row(desk);
    (
        row["state"].as_str().unwrap_or("-").to_owned(),
        row["outcome"].as_str().unwrap_or("-").to_owned(),
    )
}

const ONE_OF_TWO: &str = "{requests: [storage], approvers: [bob@example.com, carol@example.com, '*@ops.example.com'], expires: 1h}";

/// Alice's storage request, waiting for one of four approvers; Alice
/// is named too: she may approve others' requests, not her own.
fn waiting_for_alice() -> (SmtpServer, Helpdesk, PathBuf) {
    let server = SmtpServer::plain();
    let rule = "{requests: [storage], approvers: [alice@example.com, bob@example.com, carol@example.com, '*@ops.example.com'], expires: 1h}";
    let (desk, count) = desk(&server, rule, "");
    delivered(&desk, &request());
    (server, desk, count)
}

#[test]
fn issue_16_answers_from_the_requester_unproven_unnamed_unthreaded_or_automatic_run_nothing() {
    let (server, desk, count) = waiting_for_alice();
    let bob = approval_id(&server, "bob@example.com");
    // None of these counts, and none runs anything.
    let nothing = [
        (
            "the requester herself",
            answer("alice@example.com", Some(&bob), "approve", true),
        ),
        (
            "an unauthenticated approval",
            answer("bob@example.com", Some(&bob), "approve", false),
        ),
        (
            "an approver the rule does not name",
            answer("dave@example.com", Some(&bob), "approve", true),
        ),
        (
            "no thread reference",
            answer("bob@example.com", None, "approve", true),
        ),
        (
            "a wrong thread reference",
            answer(
                "bob@example.com",
                Some("<helpdesk-approval.0123456789abcdef0123456789abcdef@example.com>"),
                "approve",
                true,
            ),
        ),
        (
            "a reference to another mail",
            answer(
                "bob@example.com",
                Some("<1234@example.com>"),
                "approve",
                true,
            ),
        ),
        (
            "an auto-reply",
            letter(
                "bob@example.com",
                "Out of office",
                "approve\nI am away",
                (true, Some(&bob)),
                "Auto-Submitted: auto-replied\r\n",
            ),
        ),
        (
            "a list's copy",
            letter(
                "bob@example.com",
                "Re: Approval needed",
                "approve",
                (true, Some(&bob)),
                "List-Id: <ops.example.com>\r\n",
            ),
        ),
        (
            "neither word",
            answer(
                "bob@example.com",
                Some(&bob),
                "looks fine to me, I approve",
                true,
            ),
        ),
    ];
    for (what, raw) in &nothing {
        delivered(&desk, raw);
        assert_eq!(runs(&count), 0, "{what} ran the playbook");
        assert_eq!(state_of(&desk).0, "pending", "{what} ended the wait");
    }
    // The approver who wrote neither word is told the two.
    let explained = mails_to(&server, "bob@example.com", "Re: Approval needed");
    assert!(
        explained
            .iter()
            .any(|m| m.body().contains("\"approve\" (or \"yes\")")),
        "{:?}",
        explained.iter().map(Received::body).collect::<Vec<_>>()
    );
    // The requester approving her own request is told why not.
    let own = mails_to(&server, "alice@example.com", "Re: Approval needed");
    assert!(own.iter().any(|m| m.body().contains("your own")));

    // Still waiting: a real approval runs it.
    delivered(&desk, &answer("bob@example.com", Some(&bob), "yes", true));
    assert_eq!(runs(&count), 1);
}

#[test]
fn issue_16_a_request_runs_only_after_an_authenticated_approval_from_a_named_approver() {
    let (server, desk, count) = waiting_for_alice();
    assert_eq!(runs(&count), 0, "nothing runs before approval");
    assert!(mails_to(&server, "alice@example.com", "Approval needed").is_empty());
    assert_eq!(state_of(&desk), ("pending".into(), "-".into()));
    // The requester is told who must approve and the request's id.
    let told = mails_to(&server, "alice@example.com", "Re: quota");
    assert_eq!(told.len(), 1);
    told[0].assert_body_says("(request 1) needs approval");
    told[0].assert_body_says(
        "alice@example.com, bob@example.com, carol@example.com, *@ops.example.com",
    );
    // Each approver named by address gets an approval request, its
    // Message-ID a random token; the two differ.
    let bob = approval_id(&server, "bob@example.com");
    let carol = approval_id(&server, "carol@example.com");
    assert_ne!(bob, carol);
    let token = bob
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 32, "{bob}");
    let asked = &mails_to(&server, "bob@example.com", "Approval needed")[0];
    asked.assert_body_says("Who asked: alice@example.com");
    asked.assert_body_says("Authenticated: authenticated: dmarc=pass");
    asked.assert_body_says("Request type: storage");
    asked.assert_body_says("amount: 5");

    // Bob's authenticated approval, in the thread: it runs, once.
    delivered(
        &desk,
        &answer("bob@example.com", Some(&bob), "Approve. Go ahead", true),
    );
    assert_eq!(runs(&count), 1);
    assert_eq!(state_of(&desk), ("finished".into(), "done".into()));
    // The requester and the approver get the result.
    assert_eq!(mails_to(&server, "alice@example.com", "Re: quota").len(), 2);
    let result = mails_to(&server, "bob@example.com", "Re: quota");
    assert_eq!(result.len(), 1);
    result[0].assert_body_says("Your storage request is done");
    // A second approval (another approver, or the same again) runs nothing.
    delivered(
        &desk,
        &answer("carol@example.com", Some(&carol), "yes", true),
    );
    delivered(
        &desk,
        &answer("bob@example.com", Some(&bob), "approve", true),
    );
    assert_eq!(runs(&count), 1);

    // show tells the whole story: asked, approved by whom and how, run.
    let out = exec(desk.command(&["show", "1"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("sender          alice@example.com"),
        "{}",
        out.stdout
    );
    let approved = out
        .stdout
        .lines()
        .find(|l| l.starts_with("approve "))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        approved.contains("by bob@example.com (authenticated: dmarc=pass"),
        "{approved}"
    );
    assert!(approved.ends_with(": Go ahead"), "{approved}");
    assert!(out.stdout.contains("run started"), "{}", out.stdout);
    assert!(
        out.stdout.contains("outcome         done"),
        "{}",
        out.stdout
    );
    assert_eq!(
        first_row(&desk)["approvals"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn issue_16_a_two_person_rule_needs_two_different_approvers() {
    let server = SmtpServer::plain();
    let rule =
        "{requests: [storage], approvers: [bob@example.com, carol@example.com], required: 2}";
    let (desk, count) = desk(&server, rule, "");
    delivered(&desk, &request());
    let (bob, carol) = (
        approval_id(&server, "bob@example.com"),
        approval_id(&server, "carol@example.com"),
    );
    delivered(
        &desk,
        &answer("bob@example.com", Some(&bob), "approve", true),
    );
    // The same approver twice, even through the other approver's mail, is one.
    delivered(&desk, &answer("bob@example.com", Some(&bob), "yes", true));
    delivered(
        &desk,
        &answer("BOB@example.com", Some(&carol), "approve", true),
    );
    assert_eq!(runs(&count), 0);
    assert_eq!(state_of(&desk).0, "pending");
    let counted = mails_to(&server, "bob@example.com", "Re: Approval needed");
    assert!(
        counted[0].body().contains("1 of the 2 needed"),
        "{}",
        counted[0].body()
    );
    delivered(
        &desk,
        &answer("carol@example.com", Some(&carol), "approve", true),
    );
    assert_eq!(runs(&count), 1);
    assert_eq!(state_of(&desk), ("finished".into(), "done".into()));
    for approver in ["bob@example.com", "carol@example.com"] {
        assert_eq!(
            mails_to(&server, approver, "Re: quota").len(),
            1,
            "{approver} got no result"
        );
    }
}

#[test]
fn issue_16_a_deny_ends_the_request_and_tells_the_requester_who_and_why() {
    let server = SmtpServer::plain();
    let (desk, count) = desk(&server, ONE_OF_TWO, "");
    delivered(&desk, &request());
    let (bob, carol) = (
        approval_id(&server, "bob@example.com"),
        approval_id(&server, "carol@example.com"),
    );
    delivered(
        &desk,
        &answer(
            "bob@example.com",
            Some(&bob),
            "deny: not during the freeze",
            true,
        ),
    );
    assert_eq!(state_of(&desk), ("finished".into(), "denied".into()));
    let told = mails_to(&server, "alice@example.com", "Re: quota");
    assert_eq!(told.len(), 2, "the waiting note and the denial");
    told[1]
        .assert_body_says("was denied by bob@example.com: not during the freeze. Nothing was run.");
    // Approved after the deny: nothing.
    delivered(
        &desk,
        &answer("carol@example.com", Some(&carol), "approve", true),
    );
    assert_eq!(runs(&count), 0);
    assert_eq!(state_of(&desk).1, "denied");
}

#[test]
fn issue_16_an_expired_request_ends_in_retry_with_a_reply_and_never_runs() {
    let server = SmtpServer::plain();
    let rule = "{requests: [storage], approvers: [bob@example.com], expires: 1s}";
    let (desk, count) = desk(&server, rule, "");
    delivered(&desk, &request());
    let bob = approval_id(&server, "bob@example.com");
    std::thread::sleep(Duration::from_millis(1500));
    let out = exec(desk.command(&["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(state_of(&desk), ("finished".into(), "expired".into()));
    let told = mails_to(&server, "alice@example.com", "Re: quota");
    assert_eq!(told.len(), 2);
    told[1].assert_body_says("was not approved in time and has expired: nothing was run.");
    delivered(
        &desk,
        &answer("bob@example.com", Some(&bob), "approve", true),
    );
    assert_eq!(runs(&count), 0);
}

#[test]
fn issue_16_two_approvals_delivered_at_the_same_moment_run_the_playbook_once() {
    let server = SmtpServer::plain();
    let (desk, count) = desk(&server, ONE_OF_TWO, "");
    delivered(&desk, &request());
    let (bob, carol) = (
        approval_id(&server, "bob@example.com"),
        approval_id(&server, "carol@example.com"),
    );
    let answers = [
        answer("bob@example.com", Some(&bob), "approve", true),
        answer("carol@example.com", Some(&carol), "approve", true),
    ];
    // Both processes start before either gets its mail.
    let mut children: Vec<_> = answers
        .iter()
        .map(|_| {
            desk.command(&["run"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, raw) in children.iter_mut().zip(&answers) {
        child.stdin.take().unwrap().write_all(raw).unwrap();
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(runs(&count), 1);
    assert_eq!(state_of(&desk), ("finished".into(), "done".into()));
    let notes: Vec<String> = desk.log_rows()[..2]
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("is approved and has run"))
            .count(),
        1,
        "{notes:?}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("no longer waits"))
            .count(),
        1,
        "{notes:?}"
    );
}

#[test]
fn issue_16_a_request_waiting_for_approval_never_delays_an_unrelated_one() {
    let server = SmtpServer::plain();
    let rule = "{requests: [storage], senders: [alice@example.com], approvers: [bob@example.com]}";
    // One playbook slot: a waiting request holding it would block the next.
    let (desk, count) = desk(&server, rule, "max_parallel_runs: 1\n");
    delivered(&desk, &request());
    assert_eq!(state_of(&desk).0, "pending");
    let started = Instant::now();
    let erin = letter(
        "erin@example.com",
        "quota",
        "please raise my quota by 5 GB",
        (true, None),
        "",
    );
    delivered(&desk, &erin);
    assert_eq!(runs(&count), 1, "erin's request ran at once");
    assert!(started.elapsed() < Duration::from_secs(60));
    let rows = desk.log_rows();
    assert_eq!(rows[0]["outcome"], "done", "{rows:#?}");
    assert_eq!(rows[1]["state"], "pending", "alice's still waits");
}

#[test]
fn issue_16_pending_approve_and_deny_on_the_command_line() {
    // `helpdesk pending`, `helpdesk approve ID` and `helpdesk deny ID
    // --reason TEXT`, as docs/approvals.md shows them.
    let server = SmtpServer::plain();
    let (desk, count) = desk(&server, ONE_OF_TWO, "");
    delivered(&desk, &request());
    delivered(
        &desk,
        &letter(
            "erin@example.com",
            "quota",
            "please raise my quota by 2 GB",
            (true, None),
            "",
        ),
    );
    let out = exec(desk.command(&["pending"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[1].trim_start().starts_with("1 ")
            && lines[1].contains("alice@example.com")
            && lines[1].contains("0/1"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].trim_start().starts_with("2 ") && lines[2].contains("erin@example.com"),
        "{}",
        out.stdout
    );

    let as_oper = |args: &[&str]| {
        let mut command = desk.command(args);
        command.env("USER", "oper");
        exec(command, b"")
    };
    let approved = as_oper(&["approve", "1"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert!(
        approved
            .stdout
            .contains("row 1: Request 1 is approved and has run (done)"),
        "{}",
        approved.stdout
    );
    assert_eq!(runs(&count), 1);
    let denied = as_oper(&["deny", "2", "--reason", "ask your manager"]);
    assert_eq!(denied.code, 0, "{}", denied.stderr);
    assert_eq!(runs(&count), 1);
    let erin = mails_to(&server, "erin@example.com", "Re: quota");
    assert_eq!(erin.len(), 2);
    erin[1].assert_body_says("was denied by local:oper: ask your manager");
    // Neither waits any more: approving again is refused, and runs nothing.
    let again = exec(desk.command(&["approve", "1"]), b"");
    assert_eq!(again.code, 65, "{}", again.stderr);
    assert!(
        again.stderr.contains("no longer waits for approval"),
        "{}",
        again.stderr
    );
    let never = exec(desk.command(&["approve", "99"]), b"");
    assert_eq!(never.code, 65, "{}", never.stderr);
    assert_eq!(runs(&count), 1);
    let out = exec(desk.command(&["pending"]), b"");
    assert!(
        out.stdout.contains("(no request waits for approval)"),
        "{}",
        out.stdout
    );
    let shown = exec(desk.command(&["show", "1"]), b"").stdout;
    assert!(
        shown.contains("by local:oper (local user oper (uid "),
        "{shown}"
    );
}

#[test]
fn issue_16_a_request_that_must_wait_and_gives_a_secret_is_refused_and_keeps_nothing() {
    let server = SmtpServer::plain();
    let rule = "{requests: ['*'], approvers: [bob@example.com]}";
    let (desk, count) = desk(&server, rule, "");
    let raw = letter(
        "alice@example.com",
        "reset password: Hunter2secret",
        "username: alice",
        (true, None),
        "",
    );
    delivered(&desk, &raw);
    assert_eq!(runs(&count), 0);
    let row = first_row(&desk);
    assert_eq!(
        (row["state"].as_str(), row["outcome"].as_str()),
        (Some("finished"), Some("unauthorized")),
        "{row:#}"
    );
    assert!(mails_to(&server, "bob@example.com", "Approval needed").is_empty());
    let told = &server.received()[0];
    told.assert_body_says(
        "it needs approval, and it gives a secret value, which helpdesk never keeps",
    );
    let journal = fs::read(desk.path().join("state/journal.sqlite")).unwrap();
    assert!(!String::from_utf8_lossy(&journal).contains("Hunter2secret"));
}

#[test]
fn issue_16_check_reports_the_rules_and_a_wrong_rule_says_where() {
    let server = SmtpServer::plain();
    let (desk, _) = desk(
        &server,
        "{requests: [storage, nosuchtype], approvers: [bob@example.com], required: 1}",
        "",
    );
    let out = exec(desk.command(&["check"]), b"");
    assert!(
        out.stdout.lines().any(|l| l.ends_with(": note: approvals rule 1: storage, nosuchtype from * wait for 1 approval(s) from bob@example.com, for at most 1day")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(": warning: approvals rule 1: no request type nosuchtype in keywords.txt"),
        "{}",
        out.stdout
    );
    for (rule, said) in [
        (
            "{requests: [storage], approvers: ['*']}",
            "approvals rule 1: approver \"*\" is not an address or *@domain",
        ),
        (
            "{requests: [storage], approvers: [bob@example.com], required: 2}",
            "approvals rule 1: required: 2 cannot be met",
        ),
        (
            "{requests: [storage], approvers: [bob@example.com], expires: soon}",
            "approvals rule 1: expires \"soon\"",
        ),
        ("{requests: [storage]}", "missing field `approvers`"),
        (
            "{requests: [storage], approvers: [bob@example.com], approvers_needed: 2}",
            "unknown field `approvers_needed`",
        ),
    ] {
        let (desk, _) = desk_with_rule(&server, rule);
        let out = exec(desk.command(&["check"]), b"");
        assert_ne!(out.code, 0, "{rule}");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains("config.yaml:") && text.contains(said),
            "{rule}: {text}"
        );
    }
}

fn desk_with_rule(server: &SmtpServer, rule: &str) -> (Helpdesk, PathBuf) {
    desk(server, rule, "")
}

/// A mail from `from` to the control address, authenticated by the MX.
fn to_control(from: &str, body: &str, proven: bool) -> Vec<u8> {
    let raw = letter(from, "commands", body, (proven, None), "");
    String::from_utf8(raw)
        .unwrap()
        .replace(
            "To: helpdesk@example.com",
            "To: Control <control@example.com>",
        )
        .into_bytes()
}

#[test]
fn issue_16_the_control_address_answers_status_pending_log_and_cancels_a_waiting_request() {
    let server = SmtpServer::plain();
    let control = "control_address: control@example.com\n";
    let (desk, count) = desk(&server, ONE_OF_TWO, control);
    // Operators are named for control by a grant of their own.
    let config = desk.config_text().replace(
        "access:\n",
        "access:\n  - {requests: [control], senders: [ops@example.com]}\n",
    );
    let desk = desk.config(&config);
    delivered(&desk, &request());
    let bob = approval_id(&server, "bob@example.com");
    let commands = "status 1\npending\nlog\nfrobnicate 3\ncancel 1\nstatus 1\nthanks\ncancel 99";
    delivered(&desk, &to_control("ops@example.com", commands, true));
    let reply = mails_to(&server, "ops@example.com", "Re: commands");
    assert_eq!(reply.len(), 1);
    let body = reply[0].body().replace("\r\n", "\n");
    for said in [
        "> status 1\nRequest 1: storage from alice@example.com, received ",
        "pending; approvals 0/1, expires ",
        "> pending\n1 storage from alice@example.com: approvals 0/1",
        "> log\n2 ",
        "> frobnicate 3\nNot understood. The commands are: status ID, cancel ID, pending, log.",
        "> cancel 1\nRequest 1 is cancelled: nothing was run, and the requester has been told.",
        "> status 1\nRequest 1: storage from alice@example.com, received ",
        "cancelled; approvals 0/1, expires ",
        "; cancelled by ops@example.com\n",
        "> thanks\nStopping here.",
    ] {
        assert!(body.contains(said), "{said:?} not in:\n{body}");
    }
    assert!(!body.contains("cancel 99"), "{body}");
    assert_eq!(state_of(&desk), ("finished".into(), "cancelled".into()));
    let told = mails_to(&server, "alice@example.com", "Re: quota");
    told[1].assert_body_says("was cancelled by ops@example.com. Nothing was run.");
    // Cancelled: an approval now runs nothing.
    delivered(
        &desk,
        &answer("bob@example.com", Some(&bob), "approve", true),
    );
    assert_eq!(runs(&count), 0);

    // Not named for control (a "*" grant does not give it), or not
    // proven: no command runs; the one proven is told why.
    let before = desk.log_rows().len();
    delivered(
        &desk,
        &to_control("erin@example.com", "cancel 1\npending", true),
    );
    delivered(&desk, &to_control("ops@example.com", "pending", false));
    let rows = desk.log_rows();
    assert_eq!(rows.len(), before + 2);
    assert_eq!(
        (rows[1]["outcome"].as_str(), rows[0]["outcome"].as_str()),
        (Some("unauthorized"), Some("unauthenticated"))
    );
    let refused = mails_to(&server, "erin@example.com", "Re: commands");
    refused[0].assert_body_says("You may not use the helpdesk's control address");
    assert_eq!(
        mails_to(&server, "ops@example.com", "Re: commands").len(),
        1
    );
}

#[test]
fn issue_16_the_control_address_cancels_a_queued_request_before_it_runs() {
    let server = SmtpServer::plain();
    let rule = "{requests: [storage], senders: [alice@example.com], approvers: [bob@example.com]}";
    let (desk, count) = desk(
        &server,
        rule,
        "control_address: control@example.com\ndelivery: queue\n",
    );
    let good = desk.config_text().replace(
        "access:\n",
        "access:\n  - {requests: [control], senders: [ops@example.com]}\n",
    );
    let real = crate::support::ansible_playbook().display().to_string();
    // Its playbook cannot start yet: it stays queued, backing off.
    let desk = desk.config(&good.replace(&real, "/nonexistent"));
    let erin = letter(
        "erin@example.com",
        "quota",
        "please raise my quota by 5 GB",
        (true, None),
        "",
    );
    delivered(&desk, &erin);
    crate::support::wait_for(
        "the failed start to be journaled",
        Duration::from_secs(60),
        || {
            first_row(&desk)["reason"]
                .as_str()
                .is_some_and(|r| r.contains("/nonexistent"))
        },
    );
    delivered(&desk, &to_control("ops@example.com", "cancel 1", true));
    crate::support::wait_for("the transcript", Duration::from_secs(60), || {
        !mails_to(&server, "ops@example.com", "Re: commands").is_empty()
    });
    mails_to(&server, "ops@example.com", "Re: commands")[0]
        .assert_body_says("Request 1 is cancelled");
    // Fixed, and tried at once: the cancelled request never runs.
    let desk = desk.config(&good);
    let out = exec(desk.command(&["retry", "--now"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(runs(&count), 0);
    assert_eq!(state_of(&desk), ("finished".into(), "cancelled".into()));
    assert!(
        fs::read_dir(desk.path().join("state/spool"))
            .unwrap()
            .next()
            .is_none(),
        "left in the spool"
    );
}

/// Issue 16: a tagged address (`bob+2@`) is the same person as the
/// untagged one: it neither counts as a second approver under a
/// two-person rule that a domain pattern covers, nor lets the requester
/// (`alice+x@`) approve their own request.
#[test]
fn issue_16_a_subaddress_is_the_same_approver_and_the_requester_still() {
    let server = SmtpServer::plain();
    let rule =
        "{requests: [storage], approvers: ['*@example.com', carol@example.com], required: 2}";
    let (desk, count) = desk(&server, rule, "");
    delivered(&desk, &request());
    let carol = approval_id(&server, "carol@example.com");
    for (from, text) in [
        ("alice+x@example.com", "approve"),
        ("bob@example.com", "approve"),
        ("Bob+2@example.com", "approve"),
    ] {
        delivered(&desk, &answer(from, Some(&carol), text, true));
    }
    assert_eq!(runs(&count), 0);
    assert_eq!(state_of(&desk).0, "pending");
    let own = mails_to(&server, "alice+x@example.com", "Re: Approval needed");
    assert!(own[0].body().contains("is your own"), "{}", own[0].body());
    let again = mails_to(&server, "Bob+2@example.com", "Re: Approval needed");
    assert!(
        again[0].body().contains("already counted"),
        "{}",
        again[0].body()
    );
    delivered(
        &desk,
        &answer("carol@example.com", Some(&carol), "yes", true),
    );
    assert_eq!(runs(&count), 1);
    assert_eq!(state_of(&desk), ("finished".into(), "done".into()));
}
