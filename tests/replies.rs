//! Issue 3: replies sent for real through an SMTP server on loopback.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::smtp::{SmtpServer, TestCa};
use crate::support::{Helpdesk, exec, fixture, fresh, mail, repo};

/// The RFC 3834 and threading headers every reply carries.
fn assert_reply_headers(
    reply: &crate::support::smtp::Received,
    to: &str,
    subject: &str,
    in_reply_to: Option<&str>,
) {
    assert_eq!(
        reply.header("From").as_deref(),
        Some("helpdesk@example.com")
    );
    assert_eq!(reply.header("To").as_deref(), Some(to));
    assert_eq!(reply.header("Subject").as_deref(), Some(subject));
    assert_eq!(
        reply.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        reply.header("X-Loop").as_deref(),
        Some("helpdesk@example.com")
    );
    if let Some(id) = in_reply_to {
        assert_eq!(reply.header("In-Reply-To").as_deref(), Some(id));
        assert!(reply.header("References").unwrap_or_default().contains(id));
    }
    assert_eq!(reply.envelope["rcpt_tos"], serde_json::json!([to]));
}

#[test]
fn help_with_a_topic_gets_that_topics_help_text() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults().replying_to(&server);
    let out = desk.run(&fixture("help_storage.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let reply = server.only();
    assert_reply_headers(
        &reply,
        "frank@example.com",
        "Re: Help",
        Some("<help-1@mail.example.com>"),
    );
    let help = fs::read_to_string(repo().join("help_templates/storage_help.txt")).unwrap();
    let body = reply.body();
    for line in help.lines().filter(|l| !l.trim().is_empty()).take(5) {
        assert!(body.contains(line.trim()), "missing {line:?} in:\n{body}");
    }
}

#[test]
fn help_with_an_unknown_topic_or_none_gets_the_generated_index() {
    for (body, expect) in [
        ("help with: printers", "There is no help about \"printers\""),
        ("help me", "These are the requests"),
        ("help with: ../../etc/passwd", "There is no help about"),
    ] {
        let server = SmtpServer::plain();
        let desk = Helpdesk::from_defaults().replying_to(&server);
        let out = desk.run(&mail("gina@example.com", "Help", body));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let reply = server.only();
        assert_reply_headers(&reply, "gina@example.com", "Re: Help", None);
        let text = reply.body();
        assert!(text.contains(expect), "{text}");
        assert!(!text.contains("root:x:0:0"), "{text}");
        for name in ["storage", "manage_users", "manage_account", "query_account"] {
            assert!(
                text.contains(&format!("* {name} (subject keywords: ")),
                "{name} not in:\n{text}"
            );
            let help =
                fs::read_to_string(repo().join(format!("help_templates/{name}_help.txt"))).unwrap();
            let summary = help
                .split("\n\n")
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(text.contains(&summary), "summary of {name} not in:\n{text}");
        }
    }
}

#[test]
fn unclassified_mail_gets_could_not_tell_with_the_index() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(&server);
    let out = desk.run(&fixture("renewal.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received(), None);
    let reply = server.only();
    assert_reply_headers(
        &reply,
        "carol@example.com",
        "Re: Renewal of contract",
        Some("<renewal-1@mail.example.com>"),
    );
    let text = reply.body();
    assert!(
        text.contains("We could not tell what you need from the subject \"Renewal of contract\""),
        "{text}"
    );
    assert!(
        text.contains("* storage (subject keywords: storage, space, quota"),
        "{text}"
    );
}

#[test]
fn missing_information_runs_nothing_and_names_each_missing_label() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(&server);
    let out = desk.run(&mail(
        "hr@example.com",
        "New User",
        "Please create it.\npassword: Tr0ub4dor&3",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received(), None, "no playbook may run");
    let text = server.only().body();
    assert!(text.contains("missing some information"), "{text}");
    assert!(text.contains("    username: <value>"), "{text}");
    assert!(
        !text.contains("Tr0ub4dor&3"),
        "a secret leaked into the reply:\n{text}"
    );
}

#[test]
fn success_reply_after_a_real_playbook_run() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(&server);
    let out = desk.run(&fixture("storage_self.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(desk.received().is_some(), "the playbook did not run");
    let reply = server.only();
    assert_reply_headers(
        &reply,
        "alice@example.com",
        "Re: Increase Storage Quota",
        Some("<storage-1@mail.example.com>"),
    );
    let text = reply.body();
    assert!(
        text.contains("Your storage request is done (for alice)."),
        "{text}"
    );
    assert!(
        text.contains("localhost: 1 change made, 1 step ok"),
        "{text}"
    );
}

#[test]
fn failure_reply_names_the_failed_task_its_message_and_the_recap() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .file(
            "playbooks/manage_users.yaml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Say hello\n      ansible.builtin.debug: {msg: hello}\n    - name: Create the account\n      ansible.builtin.fail:\n        msg: \"cannot create {{ targets }} with password {{ password }}\"\n",
        )
        .replying_to(&server);
    let out = desk.run(&mail(
        "hr@example.com",
        "New User",
        "username: john\npassword: S3cret-Pw",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = server.only().body();
    assert!(
        text.contains("Your manage_users request could not be completed."),
        "{text}"
    );
    assert!(
        text.contains("The step \"Create the account\" failed on localhost:"),
        "{text}"
    );
    assert!(
        text.contains("cannot create john with password [redacted]"),
        "{text}"
    );
    assert!(!text.contains("S3cret-Pw"), "{text}");
    assert!(
        text.contains("localhost: ok=1 changed=0 unreachable=0 failed=1 skipped=0"),
        "{text}"
    );
}

#[test]
fn timeout_reply_names_the_step_that_hung() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults().file(
        "playbooks/storage.yaml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Wait for the quota server\n      ansible.builtin.command: sleep 600\n",
    );
    let config = desk.config_text().replace("timeout: 2m", "timeout: 3s");
    let desk = desk.config(&config).replying_to(&server);
    let out = desk.run(&fixture("storage_self.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = server.only().body();
    assert!(text.contains("took longer than 3s and was"), "{text}");
    assert!(
        text.contains("during the step \"Wait for the quota server\""),
        "{text}"
    );
}

#[test]
fn no_result_reply_for_types_that_mail_on_their_own() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .with_mail(&format!(
            "  smtp: {{host: 127.0.0.1, port: {}, security: none}}\n  no_result_reply: [storage]\n",
            server.port
        ));
    let out = desk.run(&fixture("storage_self.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(desk.received().is_some());
    assert!(server.received().is_empty());
}

/// Marked mail, as (header, sender, whether its request still runs):
/// automatic mail and our own loop are dropped; bulk, list, bounce and
/// robot mail runs but gets no reply.
const SILENCED: &[(&str, &str, bool)] = &[
    (
        "Auto-Submitted: auto-replied\r\n",
        "alice@example.com",
        false,
    ),
    (
        "Auto-Submitted: auto-generated\r\n",
        "alice@example.com",
        false,
    ),
    (
        "X-Loop: helpdesk@example.com\r\n",
        "alice@example.com",
        false,
    ),
    ("Precedence: bulk\r\n", "alice@example.com", true),
    ("Precedence: junk\r\n", "alice@example.com", true),
    ("Precedence: list\r\n", "alice@example.com", true),
    (
        "List-Id: <staff.lists.example.com>\r\n",
        "alice@example.com",
        true,
    ),
    (
        "List-Unsubscribe: <mailto:leave@example.com>\r\n",
        "alice@example.com",
        true,
    ),
    (
        "X-Auto-Response-Suppress: All\r\n",
        "alice@example.com",
        true,
    ),
    (
        "X-Auto-Response-Suppress: OOF\r\n",
        "alice@example.com",
        true,
    ),
    ("Return-Path: <>\r\n", "alice@example.com", true),
    ("", "MAILER-DAEMON@example.com", true),
    ("", "postmaster@example.com", true),
    ("", "noreply@example.com", true),
    ("", "no-reply@example.com", true),
    ("", "staff-request@lists.example.com", true),
    ("", "owner-staff@lists.example.com", true),
];

fn silenced_mail(header: &str, from: &str) -> String {
    format!(
        "{header}From: {from}\r\nSubject: quota\r\nMessage-ID: <loop@example.com>\r\n\r\nplease add 1 gb for user: alice\r\n"
    )
}

/// The same mail without the marker, which does get its reply.
const CONTROL: &str = "From: alice@example.com\r\nSubject: nothing to see\r\n\r\nhi\r\n";

/// Every marker through `parse`, which takes `run`'s decision (the same
/// `loops::silence` on the same config); then one real run of each kind,
/// for what only a run shows: the playbook starting or not, and no mail.
#[test]
fn loop_and_robot_mail_gets_no_reply() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(&server);
    for &(header, from, runs) in SILENCED {
        let parsed = desk.parse(silenced_mail(header, from).as_bytes());
        let why = parsed["reply"]["none"]
            .as_str()
            .unwrap_or_else(|| panic!("{header}{from}: a reply: {parsed}"));
        let expected = if runs {
            "no reply: "
        } else {
            "ignored, nothing runs: "
        };
        assert!(why.starts_with(expected), "{header}{from}: {why}");
        assert_eq!(parsed["request_type"], "storage", "{header}{from}");
        assert!(
            parsed["trust"]["access"]
                .as_str()
                .is_some_and(|a| a.starts_with("allowed")),
            "{header}{from}: {parsed}"
        );
    }
    assert_eq!(
        desk.parse(CONTROL.as_bytes())["reply"]["to"],
        "alice@example.com"
    );
    let real = [SILENCED[2], SILENCED[3]];
    assert!(!real[0].2 && real[1].2, "one of each kind");
    for (header, from, runs) in real {
        run_silenced(&server, header, from, runs);
    }
    let replies = server.received();
    assert_eq!(
        replies.len(),
        real.len(),
        "one reply per control mail, none for the others"
    );
    assert!(
        replies
            .iter()
            .all(|r| r.header("Subject").as_deref() == Some("Re: nothing to see"))
    );
}

/// `run` on a marked mail, then on the control, in a fresh folder.
fn run_silenced(server: &SmtpServer, header: &str, from: &str, runs: bool) {
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(server);
    let raw = silenced_mail(header, from);
    let out = exec(desk.command(&["-v", "run"]), raw.as_bytes());
    assert_eq!(out.code, 0, "{header}{from}: {}", out.stderr);
    assert!(
        out.stderr.contains(if runs {
            "no reply: "
        } else {
            "nothing run and no reply: "
        }),
        "{header}{from}: {}",
        out.stderr
    );
    assert_eq!(
        desk.received().is_some(),
        runs,
        "{header}{from}: did the playbook run?"
    );
    assert_eq!(desk.run(CONTROL.as_bytes()).code, 0);
}

#[test]
fn replies_per_address_and_hour_are_capped() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults().with_mail(&format!(
        "  smtp: {{host: 127.0.0.1, port: {}, security: none}}\n  reply_limit_per_hour: 2\n",
        server.port
    ));
    for _ in 0..4 {
        assert_eq!(
            desk.run(&mail("robot@example.org", "hello", "ping")).code,
            0
        );
    }
    assert_eq!(
        desk.run(&mail("human@example.org", "hello", "ping")).code,
        0
    );
    let to: Vec<String> = server
        .received()
        .iter()
        .filter_map(|r| r.header("To"))
        .collect();
    assert_eq!(
        to,
        [
            "robot@example.org",
            "robot@example.org",
            "human@example.org"
        ]
    );
}

#[test]
fn starttls_with_a_private_ca_and_authentication() {
    let ca = TestCa::new();
    let server = SmtpServer::starttls(&ca, "helpdesk", "sm7p-pass");
    let desk = Helpdesk::from_defaults();
    let secret = desk.path().join("smtp.secret");
    fs::write(&secret, "sm7p-pass\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let desk = desk.with_mail(&format!(
        "  smtp: {{host: 127.0.0.1, port: {}, security: starttls, username: helpdesk, password_file: smtp.secret, ca_file: {}}}\n",
        server.port,
        ca.path().display()
    ));
    let out = exec(desk.command(&["-v", "run"]), &fixture("help_storage.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let reply = server.only();
    assert_eq!(reply.envelope["tls"], true);
    assert_eq!(reply.envelope["auth"], "helpdesk");
    assert_reply_headers(
        &reply,
        "frank@example.com",
        "Re: Help",
        Some("<help-1@mail.example.com>"),
    );
    assert!(!out.stderr.contains("sm7p-pass"), "{}", out.stderr);

    // Without the CA the certificate is not trusted, and nothing is sent.
    let with_ca = desk.config_text().to_owned();
    let desk = desk.config(&with_ca.replace(&format!(", ca_file: {}", ca.path().display()), ""));
    let out = desk.run(&fresh(&fixture("help_storage.eml")));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("reply to frank@example.com not sent: SMTP 127.0.0.1:"),
        "{}",
        out.stderr
    );
    assert_eq!(server.received().len(), 1);

    // A password file others can read is refused, and said so.
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let desk = desk.config(&with_ca);
    let out = desk.run(&fresh(&fixture("help_storage.eml")));
    assert!(
        out.stderr
            .contains("smtp.secret: readable by group or others (mode 644): chmod 600 it"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("sm7p-pass"));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_reply_that_cannot_be_sent_does_not_lose_the_request() {
    // Nothing listens on the port of a server that was started and stopped.
    let port = SmtpServer::plain().port;
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .with_mail(&format!(
            "  smtp: {{host: 127.0.0.1, port: {port}, security: none, timeout: 5s}}\n"
        ));
    let out = desk.run(&fixture("storage_self.eml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(desk.received().is_some(), "the request must still run");
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("not sent"))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(
        line.contains("success reply to alice@example.com not sent: SMTP 127.0.0.1:"),
        "{line}"
    );
    assert_eq!(desk.run_logs().len(), 1);
}

#[test]
fn folder_transport_writes_eml_files() {
    let desk = Helpdesk::from_defaults().with_mail("  transport: folder\n  folder: outbox\n");
    assert_eq!(desk.run(&fixture("help_storage.eml")).code, 0);
    let files: Vec<_> = fs::read_dir(desk.path().join("outbox"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(files.len(), 1);
    let text = fs::read_to_string(files[0].path()).unwrap();
    assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
    assert!(text.contains("To: frank@example.com"), "{text}");
}

#[test]
fn parse_shows_the_reply_without_sending_it() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults().replying_to(&server);
    let out = desk.parse(&fixture("help_storage.eml"));
    assert_eq!(out["reply"]["to"], "frank@example.com");
    assert_eq!(out["reply"]["subject"], "Re: Help");
    assert_eq!(out["reply"]["template"], "help_topic");
    assert!(
        out["reply"]["body"]
            .as_str()
            .unwrap_or_default()
            .contains("storage")
    );
    let out = desk.parse(
        b"From: a@example.com\r\nAuto-Submitted: auto-replied\r\nSubject: quota\r\n\r\nx\r\n",
    );
    assert!(
        out["reply"]["none"]
            .as_str()
            .unwrap_or_default()
            .contains("Auto-Submitted"),
        "{out}"
    );
    assert!(server.received().is_empty());
}

#[test]
fn a_folders_own_signature_ends_every_reply_that_includes_it() {
    let desk = Helpdesk::from_defaults()
        .with_mail("  transport: folder\n  folder: outbox\n")
        .file(
            "reply_templates/signature.txt",
            "-- \nThe IT desk, room 4\n",
        );
    let parsed = desk.parse(&mail("alice@example.com", "hello", "hi"));
    let body = parsed["reply"]["body"].as_str().unwrap_or_default();
    assert!(body.ends_with("\n\n-- \nThe IT desk, room 4\n"), "{parsed}");
    // A broken one is reported as its own file.
    let desk = desk.file("reply_templates/signature.txt", "-- \n{{ oops\n");
    let out = exec(
        desk.command(&["parse"]),
        &mail("alice@example.com", "hello", "hi"),
    );
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("reply_templates/signature.txt:"),
        "{}",
        out.stderr
    );
}
