//! Issue 11, through the built binary and the real ansible-playbook: the
//! journal's duplicate key cannot be taken by someone else's mail, runs
//! per sender are capped, and nothing a mail brings reaches the operator's
//! terminal raw through `log`, `show` or `parse`.

use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::support::{Helpdesk, echo_playbook, exec, unique_id};

const TRUST: &str = "authentication: {authserv_id: [mx.example.com], require: dmarc}\naccess:\n  - {requests: ['*'], senders: ['*@example.com']}\n";

/// Echo playbooks, real trust settings, replies as files in outbox/.
fn desk(extra: &str) -> Helpdesk {
    Helpdesk::from_defaults()
        .with_echo_playbooks()
        .trusting(TRUST)
        .adding(extra)
        .with_mail("  transport: folder\n  folder: outbox\n")
}

/// A quota request with this Message-ID, carrying the trusted MX's passing
/// DMARC result on top when `authenticated`.
fn request(authenticated: bool, from: &str, message_id: &str, body: &str) -> Vec<u8> {
    request_about("quota", authenticated, from, message_id, body)
}

fn request_about(
    subject: &str,
    authenticated: bool,
    from: &str,
    message_id: &str,
    body: &str,
) -> Vec<u8> {
    let domain = from.rsplit('@').next().unwrap_or_default();
    let mx = if authenticated {
        format!(
            "Authentication-Results: mx.example.com; dkim=pass header.d={domain}; dmarc=pass (p=reject) header.from={domain}\r\nReceived: from out.{domain} (out.{domain} [192.0.2.7]) by mx.example.com (Postfix) with ESMTPS id 4711; Sun, 22 Nov 2026 09:00:00 +0000\r\n"
        )
    } else {
        String::new()
    };
    format!(
        "{mx}From: {from}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Every journal row, oldest first.
fn rows(desk: &Helpdesk) -> Vec<Value> {
    let mut rows = desk.log_rows();
    rows.reverse();
    rows
}

fn outcomes(desk: &Helpdesk) -> Vec<String> {
    rows(desk)
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["sender"].as_str().unwrap_or("-"),
                r["outcome"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn run_ok(desk: &Helpdesk, mail: &[u8]) {
    let out = desk.run(mail);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// The replies written to outbox/, as text.
fn replies(desk: &Helpdesk) -> Vec<String> {
    let Ok(entries) = fs::read_dir(desk.path().join("outbox")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| fs::read_to_string(e.ok()?.path()).ok())
        .collect()
}

#[test]
fn an_unauthenticated_mail_cannot_pre_empt_a_request_by_its_message_id() {
    let desk = desk("");
    let id = unique_id();
    // The forger sends first, with the Message-ID and From of the request.
    run_ok(
        &desk,
        &request(false, "alice@example.com", &id, "more for me by 9 gb"),
    );
    assert!(desk.run_logs().is_empty());
    run_ok(
        &desk,
        &request(true, "alice@example.com", &id, "more for me by 1 gb"),
    );
    assert_eq!(desk.run_logs().len(), 1, "{:?}", outcomes(&desk));
    assert_eq!(
        desk.received().unwrap()["amount"],
        1,
        "the authenticated request ran, not the forged one"
    );
    assert_eq!(
        outcomes(&desk),
        [
            "alice@example.com unauthenticated",
            "alice@example.com done"
        ]
    );
    let rows = rows(&desk);
    assert!(
        rows[0]["key"]
            .as_str()
            .unwrap()
            .starts_with("unauthenticated sha256:"),
        "{}",
        rows[0]
    );
    assert_eq!(
        rows[1]["key"],
        Value::String(format!("from:alice@example.com message-id:{id}"))
    );
    // The forged mail again is a duplicate of itself, not of the request.
    run_ok(
        &desk,
        &request(false, "alice@example.com", &id, "more for me by 9 gb"),
    );
    let rows = self::rows(&desk);
    assert_eq!(rows[2]["outcome"], "duplicate");
    assert_eq!(rows[2]["duplicate_of"], rows[0]["id"]);
}

#[test]
fn two_senders_with_one_message_id_both_run() {
    let desk = desk("");
    let id = unique_id();
    run_ok(
        &desk,
        &request(true, "alice@example.com", &id, "more for me by 1 gb"),
    );
    run_ok(
        &desk,
        &request(true, "bob@example.com", &id, "more for me by 2 gb"),
    );
    assert_eq!(desk.run_logs().len(), 2);
    assert_eq!(desk.received().unwrap()["from"], "bob@example.com");
    assert_eq!(
        outcomes(&desk),
        ["alice@example.com done", "bob@example.com done"]
    );
}

#[test]
fn the_same_authenticated_mail_twice_runs_once() {
    let desk = desk("");
    let mail = request(
        true,
        "alice@example.com",
        &unique_id(),
        "more for me by 1 gb",
    );
    run_ok(&desk, &mail);
    run_ok(&desk, &mail);
    // A resend with other bytes but the same sender and Message-ID, too.
    let mut resent = mail.clone();
    resent.extend(b"sent again\r\n");
    run_ok(&desk, &resent);
    assert_eq!(desk.run_logs().len(), 1);
    assert_eq!(
        outcomes(&desk),
        [
            "alice@example.com done",
            "alice@example.com duplicate",
            "alice@example.com duplicate"
        ]
    );
    let rows = rows(&desk);
    assert_eq!(rows[1]["duplicate_of"], rows[0]["id"]);
    assert_eq!(rows[2]["duplicate_of"], rows[0]["id"]);
}

/// Help (no run), five requests from Alice over a limit of two, one from
/// Bob: three of Alice's are limited, Bob's runs.
fn ask_beyond_the_limit(desk: &Helpdesk) {
    let alice = |body: &str| request(true, "alice@example.com", &unique_id(), body);
    // Help is no run.
    let help = request_about(
        "help",
        true,
        "alice@example.com",
        &unique_id(),
        "help with: storage",
    );
    run_ok(desk, &help);
    for gb in 1..=5 {
        run_ok(desk, &alice(&format!("more for me by {gb} gb")));
    }
    assert_eq!(desk.run_logs().len(), 2, "{:?}", outcomes(desk));
    assert_eq!(desk.received().unwrap()["amount"], 2);
    // Another sender is unaffected.
    run_ok(
        desk,
        &request(true, "bob@example.com", &unique_id(), "more for me by 7 gb"),
    );
    assert_eq!(desk.run_logs().len(), 3);
    assert_eq!(desk.received().unwrap()["from"], "bob@example.com");
    assert_eq!(
        outcomes(desk),
        [
            "alice@example.com done",
            "alice@example.com done",
            "alice@example.com done",
            "alice@example.com limited",
            "alice@example.com limited",
            "alice@example.com limited",
            "bob@example.com done",
        ]
    );
}

/// One reply says so; the other refusals have none. Returns the id of the
/// first limited row.
fn check_one_limited_reply(desk: &Helpdesk) -> String {
    let rows = rows(desk);
    let limited: Vec<&Value> = rows.iter().filter(|r| r["outcome"] == "limited").collect();
    assert!(
        limited[0]["reply"]
            .as_str()
            .unwrap()
            .starts_with("sent: limited reply to alice@example.com"),
        "{}",
        limited[0]
    );
    for row in &limited[1..] {
        assert_eq!(
            row["reply"],
            "none: the sender was already told of limits.runs_per_sender_per_hour"
        );
        assert_eq!(row["started_at"], Value::Null);
        assert_eq!(row["run_log"], Value::Null);
    }
    let replies = replies(desk);
    let refusals: Vec<&String> = replies
        .iter()
        .filter(|r| r.contains("requests in the past hour"))
        .collect();
    assert_eq!(refusals.len(), 1, "{replies:#?}");
    assert!(
        refusals[0].contains("To: alice@example.com"),
        "{}",
        refusals[0]
    );
    assert!(
        refusals[0].contains("you have asked for\r\n2 requests in the past hour")
            || refusals[0].contains("you have asked for\n2 requests in the past hour"),
        "{}",
        refusals[0]
    );
    // help + 2 results for Alice, 1 refusal, 1 result for Bob.
    assert_eq!(replies.len(), 5, "{replies:#?}");
    limited[0]["id"].to_string()
}

#[test]
fn runs_per_sender_per_hour_refuses_beyond_the_limit_with_one_reply() {
    let desk = desk("limits: {runs_per_sender_per_hour: 2}\n");
    ask_beyond_the_limit(&desk);
    let first = check_one_limited_reply(&desk);

    // `log` shows it, and filters by it.
    let out = exec(desk.command(&["log"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.matches(" limited ").count(), 3, "{}", out.stdout);
    let out = exec(desk.command(&["log", "--outcome", "limited"]), b"");
    assert_eq!(out.stdout.lines().count(), 1 + 3, "{}", out.stdout);
    let out = exec(desk.command(&["show", &first]), b"");
    assert!(
        out.stdout.contains("outcome         limited"),
        "{}",
        out.stdout
    );

    // The metrics count it.
    let metrics = fs::read_to_string(desk.path().join("state/metrics.prom")).unwrap();
    assert!(
        metrics.contains("helpdesk_messages_total{request_type=\"storage\",outcome=\"limited\"} 3"),
        "{metrics}"
    );
}

/// Characters that act on a terminal or hide and reorder text, one of each
/// class: ESC sequences (clear screen, OSC 52 clipboard write), the C1 CSI,
/// BEL, backspace, CR, DEL, the bidi overrides and isolates, zero-width
/// characters, line separators, tag characters.
fn hostile() -> String {
    let mut all: String = (1u32..0x20)
        .chain(0x7f..0xa0)
        .filter_map(char::from_u32)
        .collect();
    all.push_str("\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7}\u{9b}31m\u{8}\u{8}\r");
    all.extend([
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{200b}',
        '\u{200e}',
        '\u{200f}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{61c}',
        '\u{e0041}',
    ]);
    all
}

/// Whether `c` may not reach a terminal raw: a control character other
/// than the line break, or one of `hostile`'s other characters.
fn acts_on_a_terminal(c: char) -> bool {
    c != '\n' && (c.is_control() || !c.is_ascii() && hostile().contains(c))
}

/// RFC 2047, so that the subject carries every character.
fn encoded_word(text: &str) -> String {
    format!("=?utf-8?b?{}?=", crate::support::base64(text))
}

fn stdout_bytes(mut command: Command, stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts that `bytes` hold no byte or character a terminal acts on, and
/// that they show `must_show` (the escapes prove the text was there).
fn assert_clean(what: &str, bytes: &[u8], must_show: &[&str]) {
    for (at, b) in bytes.iter().enumerate() {
        assert!(
            *b == b'\n' || (*b >= 0x20 && *b != 0x7f),
            "{what}: raw byte {b:#04x} at {at}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    if let Some(c) = text.chars().find(|c| acts_on_a_terminal(*c)) {
        panic!("{what}: raw {c:?} in:\n{text}");
    }
    for shown in must_show {
        assert!(text.contains(shown), "{what}: no {shown:?} in:\n{text}");
    }
}

#[test]
fn nothing_from_a_mail_reaches_the_terminal_raw() {
    let printing = format!(
        "{}    - name: Print what the mail said\n      ansible.builtin.debug:\n        msg: \"{{{{ subject }}}} {{{{ first_name }}}} {{{{ last_name }}}}\"\n",
        echo_playbook()
    );
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .file("playbooks/manage_users.yaml", &printing);
    let hostile = hostile();
    // Format characters are not control characters: values may hold them
    // and the playbook gets them; control characters refuse the value.
    let format_only: String = hostile.chars().filter(|c| !c.is_control()).collect();
    let subject = format!("New User \u{1b}[2J{hostile}");
    let mail = format!(
        "From: eve\u{202e}moc.elpmaxe@example.com\r\nTo: helpdesk@example.com\r\nSubject: {}\r\nMessage-ID: <{}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nusername: eve\r\nfirst_name: \"A{format_only}B\"\r\nlast_name: \"{format_only}\"\r\n{hostile}\r\n",
        encoded_word(&subject),
        unique_id()
    )
    .into_bytes();
    let refused = format!(
        "From: eve@example.com\r\nSubject: {}\r\nMessage-ID: <{}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nusername: eve\r\nfirst_name: \"x{hostile}\"\r\n",
        encoded_word(&subject),
        unique_id()
    )
    .into_bytes();

    // It really carries them: the playbook got the format characters.
    run_ok(&desk, &mail);
    let received = desk.received().unwrap();
    assert_eq!(
        received["first_name"],
        Value::String(format!("A{format_only}B"))
    );
    run_ok(&desk, &refused);

    // The subject lost its control characters when the mail was read
    // (mail::header_text); the format characters it kept must show.
    let shown = ["\\u{202e}"];
    let log = stdout_bytes(desk.command(&["log"]), b"");
    assert_clean("log", &log, &shown);
    let log_json = stdout_bytes(desk.command(&["log", "--format", "json"]), b"");
    assert_clean("log --format json", &log_json, &["\\u202e"]);
    // Escaped, the JSON still says what the mail said.
    let parsed = desk.parse(&mail);
    let newest: Value =
        serde_json::from_str(String::from_utf8_lossy(&log_json).lines().last().unwrap()).unwrap();
    assert_eq!(newest["subject"], parsed["vars"]["subject"]);
    assert_eq!(newest["sender"], "eve\u{202e}moc.elpmaxe@example.com");
    for row in rows(&desk) {
        let id = row["id"].to_string();
        let show = stdout_bytes(desk.command(&["show", &id]), b"");
        assert_clean(&format!("show {id}"), &show, &shown);
    }
    let run_log = fs::read_to_string(&desk.run_logs()[0]).unwrap();
    assert!(
        run_log
            .chars()
            .any(|c| hostile.contains(c) && !c.is_ascii()),
        "the run log itself holds raw characters, so show had to escape them: {run_log}"
    );
    for message in [&mail, &refused] {
        for args in [
            &["parse"][..],
            &["parse", "--explain"],
            &["parse", "--format", "json", "--explain"],
        ] {
            let out = stdout_bytes(desk.command(args), message);
            let must: &[&str] = if args.contains(&"json") {
                &["\\u202e"]
            } else {
                &shown
            };
            assert_clean(&args.join(" "), &out, must);
        }
    }
}
