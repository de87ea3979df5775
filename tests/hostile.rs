//! Issue 4: hostile mail against the built binary and the real
//! ansible-playbook. Each case asserts what ran (nothing, or the playbook
//! with the literal value) and what was replied.

use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, ansible_playbook, echo_playbook, exec, mail};

const TRUST: &str = "authentication: {authserv_id: [mx.example.com], require: dmarc}\naccess:\n  - {requests: ['*'], senders: ['*@example.com'], scope: self}\n  - {requests: ['*'], senders: [admin@example.com]}\n  - {requests: [storage], senders: ['*@partner.example']}\n";

/// What the trusted MX puts on top of a mail whose DMARC check passed.
fn passed(domain: &str) -> String {
    format!(
        "Authentication-Results: mx.example.com; dkim=pass header.d={domain}; dmarc=pass (p=reject) header.from={domain}\r\nReceived: from out.{domain} (out.{domain} [192.0.2.7]) by mx.example.com (Postfix) with ESMTPS id 4711; Sun, 22 Nov 2026 09:00:00 +0000\r\n"
    )
}

/// A helpdesk with real trust settings, echo playbooks and a real SMTP server.
fn guarded(server: &SmtpServer) -> Helpdesk {
    Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(server)
        .trusting(TRUST)
}

fn authenticated_mail(from: &str, subject: &str, body: &str) -> Vec<u8> {
    let domain = from.rsplit('@').next().unwrap_or_default();
    let mut raw = passed(domain).into_bytes();
    raw.extend(mail(from, subject, body));
    raw
}

/// A playbook that templates every value the way a careless playbook would
/// (debug, a module argument), then echoes them.
fn careless_playbook(marker_dir: &std::path::Path) -> String {
    let careless = format!(
        "  tasks:\n    - name: Print the values\n      ansible.builtin.debug:\n        msg: \"{{{{ targets }}}} | {{{{ subject }}}} | {{{{ first_name | default('') }}}} | {{{{ last_name | default('') }}}} | {{{{ from }}}}\"\n    - name: Use one in a module argument\n      ansible.builtin.copy:\n        content: \"{{{{ targets }}}}\"\n        dest: \"{}/targets.txt\"\n",
        marker_dir.display()
    );
    echo_playbook().replacen("  tasks:\n", &careless, 1)
}

#[test]
fn the_payload_fires_when_handed_over_as_plain_json() {
    // The control: the hole the issue measured is real on this Ansible, so
    // the marker checks below can see it.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    fs::write(
        dir.path().join("vars.json"),
        format!(
            "{{\"targets\": \"{{{{ lookup('pipe', 'touch {}') }}}}\"}}",
            marker.display()
        ),
    )
    .unwrap();
    fs::write(dir.path().join("p.yaml"), "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: \"{{ targets }}\"}\n").unwrap();
    fs::write(
        dir.path().join("inventory"),
        crate::support::LOCAL_INVENTORY,
    )
    .unwrap();
    let status = Command::new(ansible_playbook())
        .args(["-i", "inventory", "--extra-vars", "@vars.json", "p.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    assert!(marker.exists(), "the JSON payload should have run");
}

#[test]
fn jinja_payloads_in_every_kind_of_value_reach_the_playbook_as_literal_text() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    let marker = desk.path().join("pwned");
    let m = marker.display();
    let careless = careless_playbook(desk.path());
    // The shipped manage_users phrasebook only takes account names as
    // targets (it would refuse this payload, see the injection test); to
    // see what Ansible makes of a template in targets, drop that pattern.
    let book =
        fs::read_to_string(desk.path().join("phrasebooks/manage_users_phrases.txt")).unwrap();
    let without_pattern = book.split("# An account name").next().unwrap().to_owned();
    let desk = desk
        .file("phrasebooks/manage_users_phrases.txt", &without_pattern)
        .file("playbooks/manage_users.yaml", &careless)
        .file("playbooks/storage.yaml", &careless);

    // Labels (targets and fields) and the subject, from the admin.
    let targets = format!("{{{{lookup('pipe','touch${{IFS}}{m}')}}}}");
    let first = format!("{{{{ lookup('pipe', 'touch {m}') }}}}");
    let last = format!("{{% set x = lookup('pipe', 'touch {m}') %}}{{# c #}}");
    let subject = format!("New User {{{{ lookup('pipe', 'touch {m}') }}}}");
    let body = format!("username: {targets}\nfirst_name: \"{first}\"\nlast_name: \"{last}\"");
    let out = desk.run(&authenticated_mail("admin@example.com", &subject, &body));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let received = desk
        .received()
        .unwrap_or_else(|| panic!("the playbook did not run: {}", out.stderr));
    assert_eq!(received["targets"], Value::String(targets.clone()));
    assert_eq!(received["first_name"], Value::String(first.clone()));
    assert_eq!(received["last_name"], Value::String(last.clone()));
    assert_eq!(received["subject"], Value::String(subject.clone()));
    assert_eq!(
        fs::read_to_string(desk.path().join("targets.txt")).unwrap(),
        targets
    );
    let log = fs::read_to_string(desk.run_logs().last().unwrap()).unwrap();
    assert!(log.contains(&format!("\"msg\": \"{targets} | ")), "{log}");
    assert!(!marker.exists(), "a template from the mail was evaluated");
    assert!(server.only().body().contains("request is done"));

    // A self target: the sender's own local part carries the payload
    // (braces are plain atext in an address).
    fs::remove_file(desk.path().join("received.json")).unwrap();
    let out = desk.run(&authenticated_mail(
        "{{7*7}}@example.com",
        "quota",
        "how much space is left for me",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let received = desk
        .received()
        .unwrap_or_else(|| panic!("did not run: {}", out.stderr));
    assert_eq!(received["targets"], "{{7*7}}");
    assert_eq!(received["from"], "{{7*7}}@example.com");
    assert!(!marker.exists());
}

#[test]
fn a_forged_from_runs_nothing_and_gets_no_reply() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    let body = "username: mallory\npassword: Hunter2Hunter2";
    let mx = "Received: from evil.example (evil.example [198.51.100.9]) by mx.example.com (Postfix) with ESMTP id 1; Sun, 22 Nov 2026 09:00:00 +0000\r\n";
    let cases = [
        ("no Authentication-Results", mx.to_owned()),
        (
            "a failed result",
            format!(
                "Authentication-Results: mx.example.com; dmarc=fail (p=reject) header.from=example.com\r\n{mx}"
            ),
        ),
        (
            "a forged pass lower down",
            format!(
                "Authentication-Results: mx.example.com; dmarc=fail header.from=example.com\r\n{mx}Received: from laptop by evil.example; Sun, 22 Nov 2026 08:59:00 +0000\r\nAuthentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"
            ),
        ),
        (
            "a pass from an untrusted authserv-id",
            format!(
                "Authentication-Results: mx.evil.example; dmarc=pass header.from=example.com\r\n{mx}"
            ),
        ),
        (
            "a pass that never passed the trusted MX",
            "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"
                .to_owned(),
        ),
    ];
    for (case, headers) in cases {
        let mut raw = headers.into_bytes();
        raw.extend(mail("admin@example.com", "New User", body));
        let out = desk.run(&raw);
        assert_eq!(out.code, 0, "{case}: {}", out.stderr);
        assert!(
            out.stderr.contains("not authenticated")
                && out.stderr.contains("nothing run, no reply"),
            "{case}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("Hunter2Hunter2"),
            "{case}: a secret reached the log"
        );
        assert_eq!(desk.received(), None, "{case}: the playbook ran");
        assert!(server.received().is_empty(), "{case}: a reply was sent");
    }
    // The control: the same mail with the MX's genuine pass runs.
    let out = desk.run(&authenticated_mail("admin@example.com", "New User", body));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received().unwrap()["targets"], "mallory");
    assert_eq!(server.received().len(), 1);
}

#[test]
fn an_unauthorized_sender_runs_nothing_and_is_told() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    let out = desk.run(&authenticated_mail(
        "mallory@partner.example",
        "New User",
        "username: mallory\npassword: Hunter2Hunter2",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received(), None);
    let reply = server.only();
    assert_eq!(
        reply.header("To").as_deref(),
        Some("mallory@partner.example")
    );
    let text = reply.body();
    assert!(text.contains("Your manage_users request was not carried out: no access grant lets mallory@partner.example ask for manage_users"), "{text}");
    assert!(!text.contains("Hunter2Hunter2"));
    // The same sender may ask for what a grant gives them.
    let out = desk.run(&authenticated_mail(
        "mallory@partner.example",
        "quota",
        "user: mallory by 1 gb more",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(desk.received().is_some());
}

#[test]
fn scope_self_may_not_name_someone_else() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    let out = desk.run(&authenticated_mail(
        "alice@example.com",
        "quota",
        "please add 5 gb for user: bob",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received(), None);
    let text = server.only().body();
    assert!(text.contains("lets alice@example.com act only on their own account (alice), and the request names another"), "{text}");
    let out = desk.run(&authenticated_mail(
        "alice@example.com",
        "quota",
        "how much is left of my quota",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received().unwrap()["targets"], "alice");
}

#[test]
fn argument_injection_values_are_refused_or_stay_plain_values() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    for (body, field) in [
        ("username: --become", "username:"),
        ("username: -e@/etc/shadow", "username:"),
        ("username: jo\u{0}hn", "username:"),
        ("username: \"john smith\"", "username:"),
    ] {
        let out = desk.run(&authenticated_mail("admin@example.com", "New User", body));
        assert_eq!(out.code, 0, "{body:?}: {}", out.stderr);
        assert_eq!(desk.received(), None, "{body:?} ran");
        let replies = server.received();
        let text = replies.last().unwrap().body();
        assert!(
            text.contains("was not carried out, because some of what"),
            "{body:?}: {text}"
        );
        assert!(text.contains(&format!("    {field} ")), "{body:?}: {text}");
    }
    // Values that are not targets carry no pattern: they reach the playbook
    // as plain values and never become arguments of ansible-playbook.
    let out = desk.run(&authenticated_mail(
        "admin@example.com",
        "New User",
        "username: john\n--become\nfirst_name: \"--become -e@/etc/shadow\"\nlast_name: -K",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let received = desk.received().unwrap();
    assert_eq!(received["targets"], "john");
    assert_eq!(received["first_name"], "--become -e@/etc/shadow");
    assert_eq!(received["last_name"], "-K");
    let log = fs::read_to_string(desk.run_logs().last().unwrap()).unwrap();
    // Word by word: the vars file's random name may hold "-K" (vars-5-K9…).
    let argv = log.lines().next().unwrap();
    let words: Vec<&str> = argv.split_whitespace().collect();
    assert!(
        !argv.contains("become")
            && !argv.contains("shadow")
            && !words.iter().any(|w| *w == "-K" || w.starts_with("-e@")),
        "{argv}"
    );
}

#[test]
fn help_with_a_path_reads_nothing_outside_help_templates() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    fs::write(desk.path().join("secret_help.txt"), "TOP SECRET").unwrap();
    for topic in [
        "../../../../etc/passwd",
        "../secret",
        "/etc/shadow",
        "..%2F..%2Fetc%2Fpasswd",
        "storage/../../secret",
    ] {
        let out = desk.run(&authenticated_mail(
            "bob@example.com",
            "Help",
            &format!("help with: {topic}"),
        ));
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let replies = server.received();
    assert_eq!(replies.len(), 5);
    for reply in replies {
        let text = reply.body();
        assert!(text.contains("There is no help about"), "{text}");
        assert!(
            !text.contains("root:") && !text.contains("TOP SECRET"),
            "{text}"
        );
    }
}

#[test]
fn an_oversized_message_runs_nothing_and_is_told() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    let config = format!("{}limits: {{message_size: 1MiB}}\n", desk.config_text());
    let desk = desk.config(&config);
    let mut big = authenticated_mail("admin@example.com", "New User", "username: john\n");
    while big.len() < 3 * 1024 * 1024 {
        big.extend_from_slice(
            b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
        );
    }
    let out = desk.run(&big);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received(), None);
    server
        .only()
        .assert_body_says("is larger than this helpdesk accepts (1 MiB), so nothing was done");
}

#[test]
fn a_header_block_of_100k_lines_is_handled() {
    let server = SmtpServer::plain();
    let desk = guarded(&server);
    let mut raw = passed("example.com").into_bytes();
    for n in 0..100_000 {
        raw.extend_from_slice(format!("X-Filler-{n}: {}\r\n", "x".repeat(20)).as_bytes());
    }
    raw.extend(mail("admin@example.com", "New User", "username: john"));
    let out = exec(desk.command(&["run"]), &raw);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
    assert_eq!(desk.received().unwrap()["targets"], "john");
    assert_eq!(server.received().len(), 1);
}
