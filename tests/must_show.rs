//! Issue 2's "Must show", through `helpdesk parse --format json` on the
//! built-in defaults, one test per point.

use serde_json::{Value, json};

use crate::support::{fixture, mail, parse_builtin};

#[test]
fn issue_2_point_1_storage_for_oneself() {
    let out = parse_builtin(&mail(
        "alice@example.com",
        "Increase Storage Quota",
        "Hello, I'd like to increase my storage quota by 9.3 GB please.",
    ));
    assert_eq!(out["request_type"], "storage");
    let vars = &out["vars"];
    assert_eq!(vars["targets"], "alice");
    assert_eq!(vars["selftargets"], true);
    assert_eq!(vars["verbs_positive"], true);
    assert_eq!(vars["verbs_negative"], false);
    assert_eq!(vars["queries"], false);
    assert_eq!(vars["modifiers"], "by");
    assert_eq!(vars["amount"], json!(9.3));
    assert!(vars["amount"].is_f64(), "amount must be a JSON number");
    assert_eq!(vars["unit"], "gb");
    assert_eq!(vars["from"], "alice@example.com");
    assert_eq!(vars["request_type"], "storage");
    assert_eq!(out["reason"], Value::Null);
    assert!(
        out["playbook"]
            .as_str()
            .is_some_and(|p| p.ends_with("playbooks/storage.yaml"))
    );
    let command = out["command"]
        .as_array()
        .unwrap_or_else(|| panic!("no command: {out}"));
    assert_eq!(command[0], "ansible-playbook");
    assert!(
        command
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.starts_with('@')))
    );
}

#[test]
fn issue_2_point_2_storage_for_a_named_user() {
    let out = parse_builtin(&mail(
        "bob@example.com",
        "storage",
        "Increase the storage allocation for the user: alicesmith to 3.5gb",
    ));
    assert_eq!(out["request_type"], "storage");
    assert_eq!(out["vars"]["targets"], "alicesmith");
    assert_eq!(out["vars"]["modifiers"], "to");
    assert_eq!(out["vars"]["amount"], json!(3.5));
    assert_eq!(out["vars"]["unit"], "gb");
}

#[test]
fn issue_2_point_3_new_user() {
    let out = parse_builtin(&mail(
        "hr@example.com",
        "New User",
        "username: john\npassword: 1234\nfirst_name: John\nlast_name: Smith",
    ));
    assert_eq!(out["request_type"], "manage_users");
    let vars = &out["vars"];
    assert_eq!(vars["targets"], "john");
    assert_eq!(vars["password"], json!("1234"));
    assert_eq!(vars["first_name"], "John");
    assert_eq!(vars["last_name"], "Smith");
    assert_eq!(vars["verbs_positive"], true);
}

#[test]
fn issue_2_point_4_unrelated_subject_is_not_classified() {
    let out = parse_builtin(&mail(
        "carol@example.com",
        "Renewal of contract",
        "A new user count is attached.",
    ));
    assert_eq!(out["request_type"], Value::Null);
    assert_eq!(out["playbook"], Value::Null);
    assert_eq!(out["command"], Value::Null);
    let reason = out["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no keyword"), "reason: {reason:?}");
    assert!(reason.contains("Renewal of contract"), "reason: {reason:?}");
}

#[test]
fn issue_2_point_5_quoted_reply_cannot_trigger_anything() {
    let out = parse_builtin(&fixture("reply_quoted.eml"));
    assert_eq!(out["request_type"], "manage_users");
    assert_eq!(out["vars"]["verbs_negative"], false);
    assert!(!out["vars"].to_string().contains("bob"), "{}", out["vars"]);

    let out = parse_builtin(&fixture("reply_quoted_html_only.eml"));
    assert_eq!(out["vars"]["verbs_negative"], false);
    assert!(!out["vars"].to_string().contains("bob"), "{}", out["vars"]);
}

#[test]
fn issue_2_point_6_encodings_give_the_same_vars() {
    for (plain, variants) in [
        (
            "storage_self.eml",
            &[
                "storage_self_base64.eml",
                "storage_self_qp_latin1.eml",
                "storage_self_html_only.eml",
            ][..],
        ),
        (
            "new_user.eml",
            &[
                "new_user_base64.eml",
                "new_user_qp_latin1.eml",
                "new_user_html_only.eml",
                "new_user_multipart_attachment.eml",
            ][..],
        ),
    ] {
        let expected = parse_builtin(&fixture(plain))["vars"].clone();
        assert_ne!(expected["targets"], Value::Null, "{plain}");
        for variant in variants {
            assert_eq!(
                parse_builtin(&fixture(variant))["vars"],
                expected,
                "{variant} differs from {plain}"
            );
        }
    }
}
