//! Issue 11: authentication that cannot be forged by position, and one
//! unambiguous sender, against the built binary (`parse --format json`,
//! and `run` with the real ansible-playbook and a real SMTP server).

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, mail};

const ACCESS: &str = "access:\n  - {requests: ['*'], senders: ['*@example.com']}\n";

fn desk(authentication: &str) -> Helpdesk {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let config = desk.config_text().replace(
        crate::support::OPEN_TRUST,
        &format!("authentication: {authentication}\n{ACCESS}"),
    );
    desk.config(&config)
}

fn postfix() -> Helpdesk {
    desk("{authserv_id: [mx.example.com], position: above, require: dmarc}")
}

fn gmail() -> Helpdesk {
    desk("{authserv_id: [mx.google.com], position: below, require: dmarc}")
}

const POSTFIX_RECEIVED: &str = "Received: from out.example.com (out.example.com [192.0.2.7])\r\n\tby mx.example.com (Postfix) with ESMTPS id 4Zx1y2;\r\n\tSun, 22 Nov 2026 09:00:00 +0000 (UTC)\r\n";
const SENDER_RECEIVED: &str = "Received: from laptop (laptop [10.0.0.5]) by out.example.com with ESMTPSA id 99; Sun, 22 Nov 2026 08:59:59 +0000\r\n";
const GMAIL_RECEIVED: &str = "Received: from out.example.com (out.example.com. [192.0.2.7])\r\n        by mx.google.com with ESMTPS id a1b2c3\r\n        for <helpdesk@gmail.com>\r\n        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);\r\n        Sun, 22 Nov 2026 01:00:00 -0800 (PST)\r\n";

fn opendmarc(result: &str) -> String {
    format!(
        "Authentication-Results: mx.example.com; dmarc={result} (p=reject dis=none) header.from=example.com\r\n"
    )
}

fn gmail_result(result: &str) -> String {
    format!(
        "Authentication-Results: mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=Ab/Cd+9;\r\n       spf=pass (google.com: domain of alice@example.com designates 192.0.2.7 as permitted sender) smtp.mailfrom=alice@example.com;\r\n       dmarc={result} (p=REJECT sp=REJECT dis=NONE) header.from=example.com\r\n"
    )
}

fn request(headers: &[&str]) -> Vec<u8> {
    let mut raw = headers.concat().into_bytes();
    raw.extend(mail(
        "Alice <alice@example.com>",
        "quota",
        "please raise my quota by 5 GB",
    ));
    raw
}

fn authentication(desk: &Helpdesk, raw: &[u8]) -> String {
    let parsed = desk.parse(raw);
    parsed["trust"]["authentication"]
        .as_str()
        .unwrap_or_else(|| panic!("no trust.authentication: {parsed}"))
        .to_owned()
}

fn assert_not(desk: &Helpdesk, raw: &[u8], why: &str) {
    let verdict = authentication(desk, raw);
    assert!(verdict.starts_with("not authenticated"), "{verdict}");
    assert!(verdict.contains(why), "{verdict}");
}

#[test]
fn postfix_above_a_genuine_fail_above_beats_a_forged_pass_below() {
    let raw = request(&[
        &opendmarc("fail"),
        POSTFIX_RECEIVED,
        &opendmarc("pass"),
        SENDER_RECEIVED,
    ]);
    assert_not(&postfix(), &raw, "dmarc=fail");
}

#[test]
fn postfix_above_a_forged_pass_below_counts_not_when_the_mx_wrote_none() {
    // The milter was skipped: nothing above the MX's Received.
    for raw in [
        request(&[POSTFIX_RECEIVED, &opendmarc("pass")]),
        request(&[POSTFIX_RECEIVED, &opendmarc("pass"), SENDER_RECEIVED]),
        // with a fake "by mx.example.com" hop of the sender's own below
        request(&[POSTFIX_RECEIVED, &opendmarc("pass"), POSTFIX_RECEIVED]),
    ] {
        assert_not(&postfix(), &raw, "no Authentication-Results");
    }
    // The control: the same result above the Received counts.
    let verdict = authentication(
        &postfix(),
        &request(&[&opendmarc("pass"), POSTFIX_RECEIVED, SENDER_RECEIVED]),
    );
    assert!(
        verdict.starts_with("authenticated: dmarc=pass"),
        "{verdict}"
    );
}

#[test]
fn gmail_below_only_the_real_result_counts_not_a_forged_one_further_down() {
    for (real, expected) in [("pass", true), ("fail", false)] {
        let raw = request(&[
            GMAIL_RECEIVED,
            &gmail_result(real),
            SENDER_RECEIVED,
            &gmail_result(if real == "pass" { "fail" } else { "pass" }),
        ]);
        let verdict = authentication(&gmail(), &raw);
        assert_eq!(verdict.starts_with("authenticated"), expected, "{verdict}");
        assert!(verdict.contains(&format!("dmarc={real}")), "{verdict}");
    }
}

#[test]
fn gmail_below_a_forged_pass_right_under_the_real_fail_conflicts() {
    let raw = request(&[GMAIL_RECEIVED, &gmail_result("fail"), &gmail_result("pass")]);
    assert_not(&gmail(), &raw, "disagree");
}

#[test]
fn quoted_pair_confusion_is_not_authenticated() {
    let confused = "Authentication-Results: mx.example.com; dmarc=fail header.from=\"x\\\";dmarc=pass header.from=example.com\"\r\n";
    assert_not(
        &postfix(),
        &request(&[confused, POSTFIX_RECEIVED]),
        "dmarc=fail",
    );
}

#[test]
fn conflicting_pass_and_fail_are_not_authenticated() {
    let both = "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com; dmarc=fail header.from=example.com\r\n";
    assert_not(&postfix(), &request(&[both, POSTFIX_RECEIVED]), "disagree");
    let two = [
        &opendmarc("pass") as &str,
        &opendmarc("fail"),
        POSTFIX_RECEIVED,
    ];
    assert_not(&postfix(), &request(&two), "disagree");
}

/// Mails whose sender is ambiguous: each is not authenticated, runs
/// nothing and gets no reply, though the MX says dmarc=pass.
#[test]
fn an_ambiguous_sender_is_not_authenticated_and_gets_no_reply() {
    let pass = format!("{}{POSTFIX_RECEIVED}", opendmarc("pass"));
    let cases = [
        (
            "From: alice@example.com\r\nFrom: bob@example.com\r\n",
            "From",
            "2 From headers",
        ),
        (
            "From: alice@example.com, bob@example.com\r\n",
            "From",
            "holds 2 addresses",
        ),
        (
            "From: Staff: alice@example.com, bob@example.com;\r\n",
            "From",
            "is a group",
        ),
        ("Sender: alice@example.com\r\n", "From", "no From header"),
        (
            "From: list@example.com\r\nX-Original-Sender: alice@example.com\r\nX-Original-Sender: bob@example.com\r\n",
            "X-Original-Sender",
            "2 X-Original-Sender headers",
        ),
    ];
    let server = SmtpServer::plain();
    for (senders, header, why) in cases {
        let desk = desk("{authserv_id: [mx.example.com], position: above, require: dmarc}")
            .replying_to(&server);
        let config = format!("sender_header: {header}\n{}", desk.config_text());
        let desk = desk.config(&config);
        let raw = format!(
            "{pass}{senders}To: helpdesk@example.com\r\nSubject: quota\r\nMessage-ID: <{}>\r\n\r\nplease raise my quota by 5 GB\r\n",
            crate::support::unique_id()
        );
        assert_not(&desk, raw.as_bytes(), why);
        let parsed = desk.parse(raw.as_bytes());
        assert!(parsed["reply"]["none"].is_string(), "{parsed}");
        let out = desk.run(raw.as_bytes());
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains(why), "not logged: {}", out.stderr);
        assert!(desk.received().is_none(), "a playbook ran for {senders:?}");
    }
    assert!(server.received().is_empty(), "a reply was sent");
    // The control: one sender, the same pass, and the reply comes.
    let desk = desk("{authserv_id: [mx.example.com], position: above, require: dmarc}")
        .replying_to(&server);
    let out = desk.run(&request(&[&pass]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        desk.received().is_some(),
        "the control did not run: {}",
        out.stderr
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn check_explains_the_layout_and_warns_when_position_is_not_set() {
    let check = |desk: &Helpdesk| {
        let out = crate::support::exec(desk.command(&["check"]), b"");
        out.stdout
    };
    let unset = check(&desk("{authserv_id: [mx.example.com], require: dmarc}"));
    assert!(
        unset.lines().any(|l| l
            .contains(": warning: authentication.position is not set, so above is assumed")
            && l.contains("set position: above or position: below")),
        "{unset}"
    );
    let below = check(&gmail());
    assert!(
        below.lines().any(|l| l.contains(": note: authentication.position: below: only the Authentication-Results directly below mx.google.com's own Received header counts")),
        "{below}"
    );
    assert!(!below.contains("position is not set"), "{below}");
    let above = check(&postfix());
    assert!(
        above.contains(": note: authentication.position: above: only Authentication-Results above mx.example.com's own Received header count"),
        "{above}"
    );
}
