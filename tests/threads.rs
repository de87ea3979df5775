//! A reply to a message helpdesk has handled loses every line that repeats
//! that message or helpdesk's answer to it, even when the client quoted
//! them without any marker (issue 12).

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, unique_id};

fn message(id: &str, in_reply_to: Option<&str>, subject: &str, body: &str) -> Vec<u8> {
    let thread = in_reply_to
        .map(|parent| format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: alice@example.com\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{thread}Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

#[test]
fn a_reply_that_repeats_the_thread_without_quote_marks_is_read_without_it() {
    let server = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .replying_to(&server);
    let first = unique_id();
    let out = desk.run(&message(
        &first,
        None,
        "storage",
        "Please increase the quota of user: bob by 20 GB",
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received().unwrap()["targets"], "bob");
    let answer = server.only().body();
    let answer_line = answer
        .lines()
        .find(|l| l.trim().len() >= 20)
        .expect("the reply has a line to repeat")
        .to_owned();

    // The client copied the old mail and helpdesk's answer below the new
    // text, indented, with no attribution and no `>`.
    let old = format!(
        "please just show me my current quota\n\n    {answer_line}\n    Please increase the quota of user: bob by 20 GB\n"
    );
    let reply = message(&unique_id(), Some(&first), "Re: storage", &old);
    let parsed = desk.parse(&reply);
    assert_eq!(
        parsed["text"], "storage\nplease just show me my current quota",
        "{parsed:#}"
    );
    let cuts = parsed["cuts"].as_array().unwrap();
    assert!(
        cuts.iter().any(|c| c["lines"] == 2
            && c["reason"]
                .as_str()
                .unwrap()
                .contains("repeats an earlier message of this thread")),
        "{cuts:?}"
    );
    assert_ne!(parsed["vars"]["targets"], "bob", "{parsed:#}");

    // The same lines in a mail of another thread are read.
    let elsewhere = message(&unique_id(), Some("other@example.com"), "Re: storage", &old);
    assert_eq!(desk.parse(&elsewhere)["vars"]["targets"], "bob");

    // And `run` decides the reply the same way: the playbook gets alice.
    let out = desk.run(&reply);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desk.received().unwrap()["targets"], "alice");
}
