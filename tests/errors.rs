//! Wrong configuration, wrong helpdesk folders and hostile input: one clear
//! line, the right exit status, never a panic.

use crate::support::{Helpdesk, exec, helpdesk, mail};

const EX_CONFIG: i32 = 78;
const EX_TEMPFAIL: i32 = 75;

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    lines[0]
}

#[test]
fn run_without_a_config_says_how_to_make_one() {
    let mut command = helpdesk();
    command.arg("run");
    let out = exec(command, &mail("a@example.com", "quota", "x"));
    assert_eq!(out.code, EX_TEMPFAIL, "the MTA must keep the mail");
    let line = one_line(&out.stderr);
    assert!(line.contains("needs a config file"), "{line}");
    assert!(
        line.contains("HELPDESK_CONFIG") && line.contains("config.example.yaml"),
        "{line}"
    );
}

#[test]
fn config_errors_name_file_line_and_column() {
    let desk = Helpdesk::from_defaults().config("helpdesk_dir: .\nansible:\n  timout: 5m\n");
    let out = exec(
        desk.command(&["parse"]),
        &mail("a@example.com", "quota", "x"),
    );
    assert_eq!(out.code, EX_CONFIG);
    let line = one_line(&out.stderr);
    assert!(line.contains("config.yaml:3:"), "{line}");
    assert!(line.contains("timout"), "{line}");

    let out = exec(desk.command(&["run"]), &mail("a@example.com", "quota", "x"));
    assert_eq!(out.code, EX_TEMPFAIL);
}

#[test]
fn phrasebook_and_keywords_syntax_errors_are_file_and_line() {
    let desk = Helpdesk::from_defaults().file(
        "phrasebooks/storage_phrases.txt",
        "*targets*\nuser:\n*queries*\n'how much left\n",
    );
    let out = exec(
        desk.command(&["parse"]),
        &mail("a@example.com", "quota", "x"),
    );
    assert_eq!(out.code, EX_CONFIG);
    let line = one_line(&out.stderr);
    assert!(
        line.contains("phrasebooks/storage_phrases.txt:4: unterminated quote"),
        "{line}"
    );

    let desk = Helpdesk::from_defaults().file("keywords.txt", "stray words\n*storage*\nquota\n");
    let out = exec(
        desk.command(&["parse"]),
        &mail("a@example.com", "quota", "x"),
    );
    let line = one_line(&out.stderr);
    assert!(
        line.contains("keywords.txt:1: phrases before the first section"),
        "{line}"
    );
}

#[test]
fn a_missing_playbook_is_one_line_naming_the_path() {
    let desk = Helpdesk::from_defaults();
    std::fs::remove_file(desk.path().join("playbooks/storage.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = exec(
        desk.command(&["parse", "--format", "json"]),
        &mail("a@example.com", "quota", "x"),
    );
    assert_eq!(out.code, EX_CONFIG);
    let line = one_line(&out.stderr);
    assert!(
        line.contains("playbooks/storage.yaml: no playbook for request type 'storage'"),
        "{line}"
    );
    assert!(out.stdout.is_empty());
    let out = exec(desk.command(&["run"]), &mail("a@example.com", "quota", "x"));
    assert_eq!(out.code, EX_TEMPFAIL);
}

#[test]
fn config_is_accepted_before_or_after_the_subcommand_and_from_the_environment() {
    let desk = Helpdesk::from_defaults();
    let path = desk.config_path();
    let message = mail("a@example.com", "quota", "x");
    let mut before = helpdesk();
    before
        .arg("--config")
        .arg(&path)
        .args(["parse", "--format", "json"]);
    let mut after = helpdesk();
    after
        .args(["parse", "--format", "json", "--config"])
        .arg(&path);
    let mut env = helpdesk();
    env.env("HELPDESK_CONFIG", &path)
        .args(["parse", "--format", "json"]);
    for command in [before, after, env] {
        let out = exec(command, &message);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let playbook = out.json()["playbook"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            playbook,
            desk.path()
                .join("playbooks/storage.yaml")
                .display()
                .to_string()
        );
    }
}

#[test]
fn hostile_input_never_panics() {
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\0\0\0\xff\xfe".to_vec(),
        b"From: a@example.com\r\nSubject: quota\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!".to_vec(),
        b"Subject: =?utf-8?q?=FF=FE?= =?bogus?x?y?=\r\nFrom: <@>\r\n\r\nusername: \"".to_vec(),
    ];
    // Deterministic pseudo-random bytes.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    inputs.push(
        (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect(),
    );
    // 50 MB: a real header, then a body of request-like lines.
    let mut big = mail("a@example.com", "quota", "").to_vec();
    while big.len() < 50 * 1024 * 1024 {
        big.extend_from_slice(b"increase my quota by 5 gb username: x > quoted\r\n");
    }
    inputs.push(big);
    for input in &inputs {
        let mut command = helpdesk();
        command.args(["parse", "--format", "json"]);
        let out = exec(command, input);
        assert_eq!(
            out.code,
            0,
            "input of {} bytes: {}",
            input.len(),
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        let _ = out.json();
    }
}

#[test]
fn explain_says_which_phrase_matched_where() {
    let mut command = helpdesk();
    command.args(["parse", "--explain"]);
    let out = exec(
        command,
        &mail(
            "alice@example.com",
            "Increase Storage Quota",
            "Hello,\nI'd like to increase my storage quota by 9.3 GB please.",
        ),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout;
    assert!(
        text.contains("request type storage: keyword 'storage' ((built-in)/keywords.txt:"),
        "{text}"
    );
    assert!(text.contains("at subject, column 10"), "{text}");
    assert!(
        text.contains(
            "amount = 9.3: 'by 9.3 GB' (*modifiers* at (built-in)/phrasebooks/storage_phrases.txt:"
        ),
        "{text}"
    );
    assert!(text.contains("at body line 2"), "{text}");
    assert!(text.contains("targets = \"alice\""), "{text}");
    assert!(
        text.contains("not found in the mail: verbs_negative, queries"),
        "{text}"
    );
}

#[test]
fn the_example_config_is_valid_and_documents_every_key() {
    let example =
        std::fs::read_to_string(crate::support::repo().join("config.example.yaml")).unwrap();
    let desk = Helpdesk::from_defaults().config(&example);
    let secret = desk.path().join("smtp.secret");
    std::fs::write(&secret, "x").unwrap();
    let out = exec(
        desk.command(&["parse", "--format", "json"]),
        &mail("a@example.com", "quota", "more for me"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The example trusts only mx.example.com's DMARC verdict, which this
    // test mail does not carry.
    let json = out.json();
    assert_eq!(json["command"], serde_json::Value::Null);
    let auth = json["trust"]["authentication"].as_str().unwrap_or_default();
    assert!(
        auth.starts_with("not authenticated: no Received header by mx.example.com"),
        "{auth}"
    );
    // Every key the config reader accepts, as in src/desk/config.rs.
    let keys = "helpdesk_dir sender_header state_dir ansible command inventory timeout extra_args \
        helpdesk_address mail transport smtp host port security username password_file password_env \
        ca_file sendmail folder reply_limit_per_hour no_result_reply authentication authserv_id \
        received_by require access requests senders scope limits message_size value_length variables \
        delivery max_parallel_runs journal_timeout archive max_size keep environment metrics_file runs_per_sender_per_hour \
        decision_cpu decision_memory decision_wall sources imap url maildir done failed alert_after \
        starttls poll_interval maintenance providers name parser timezone playbooks scheduled cancelled \
        started ended lead unreadable";
    for key in keys.split_whitespace() {
        assert!(
            example.contains(&format!("{key}:")),
            "{key} is not in config.example.yaml"
        );
    }
}
