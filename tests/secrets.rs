//! Issue 11, secrets and state: a secret given in a mail (in the subject,
//! plain or RFC 2047-encoded, or in a base64 or quoted-printable body)
//! reaches the playbook through its own variable and nowhere else: not the
//! journal's bytes (database, WAL, SHM), not `log` or `show`, not the
//! playbook's `subject`, not the reply, not the logs, not the archive. And
//! everything in the state folder is private whatever the umask, except
//! the metrics file; `check` reports what is not.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, base64, echo_playbook, exec, unique_id};

/// A request type whose phrasebook lists its one field under `*secret*`,
/// though the name says nothing secret.
fn with_pin_type(desk: Helpdesk) -> Helpdesk {
    let keywords = fs::read_to_string(desk.path().join("keywords.txt")).unwrap();
    desk.file("keywords.txt", &format!("{keywords}*vpn*\nvpn\n"))
        .file(
            "phrasebooks/vpn_phrases.txt",
            "*fields*\npin:\n*secret*\npin\n*required*\npin\n",
        )
        .file("playbooks/vpn.yaml", &echo_playbook())
        .file("help_templates/vpn_help.txt", "Write: vpn pin: <pin>\n")
}

/// One mail of the corpus: what it is called, its bytes, the secret it
/// gives, the subject everything must show instead of the real one, and
/// whether the playbook sees it as `password`.
struct Case {
    name: &'static str,
    raw: Vec<u8>,
    message_id: String,
    secret: String,
    shown_subject: String,
    password_var: bool,
}

fn head(subject: &str, extra: &str, message_id: &str) -> String {
    format!(
        "From: alice@example.com\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n{extra}"
    )
}

/// The corpus as it is written: each case gets a Message-ID of its own.
#[derive(Default)]
struct Corpus(Vec<Case>);

impl Corpus {
    fn add(
        &mut self,
        name: &'static str,
        secret: &str,
        build: &dyn Fn(&str, &str) -> String,
        shown: &str,
        password_var: bool,
    ) {
        let id = unique_id();
        self.0.push(Case {
            name,
            raw: build(secret, &id).into_bytes(),
            message_id: id,
            secret: secret.to_owned(),
            shown_subject: shown.to_owned(),
            password_var,
        });
    }
}

const PLAIN_BODY: &str = "Content-Type: text/plain; charset=utf-8\r\n\r\nusername: alice\r\n";

/// The secret in the subject: plain, RFC 2047-encoded, split over two
/// encoded words, after `Re:`.
fn subject_cases(cases: &mut Corpus) {
    cases.add(
        "plain subject",
        "Hunter2plain9",
        &|s, id| head(&format!("reset password: {s}"), PLAIN_BODY, id),
        "reset password: [redacted]",
        true,
    );
    cases.add(
        "RFC 2047 B subject",
        "Grüße=B64x7",
        &|s, id| {
            head(
                &format!("=?utf-8?B?{}?=", base64(&format!("reset password: {s}"))),
                PLAIN_BODY,
                id,
            )
        },
        "reset password: [redacted]",
        true,
    );
    cases.add(
        "RFC 2047 Q subject, the secret split over two words",
        "Qsplit=Wörd5",
        // "Qsplit=Wörd5" in Q encoding, cut in the middle of the secret.
        &|_, id| {
            head(
                "=?utf-8?Q?reset_password=3A_Qsplit=3D?=\r\n =?utf-8?Q?W=C3=B6rd5?=",
                PLAIN_BODY,
                id,
            )
        },
        "reset password: [redacted]",
        true,
    );
    cases.add(
        "Re: prefix, the secret under a label of its own",
        "Tok3nRe-x",
        &|s, id| head(&format!("Re: reset password password: {s}"), PLAIN_BODY, id),
        "Re: reset password password: [redacted]",
        true,
    );
}

/// A base64 body, `username: alice` and `password: <secret>`.
fn base64_body(secret: &str) -> String {
    format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64(&format!("username: alice\r\npassword: {secret}\r\n"))
    )
}

/// The secret in an encoded body, and a `*secret*` field in the subject.
fn body_cases(cases: &mut Corpus) {
    cases.add(
        "base64 body, the secret repeated in the subject",
        "Base64Body=ü3",
        &|s, id| head(&format!("reset password: {s}"), &base64_body(s), id),
        "reset password: [redacted]",
        true,
    );
    cases.add(
        "base64 body only",
        "OnlyInBody64q",
        &|s, id| head("reset password", &base64_body(s), id),
        "reset password",
        true,
    );
    cases.add(
        "quoted-printable body, Latin-1",
        "Qp=Kl\u{e4}r8",
        &|_, id| {
            head(
                "reset password",
                "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nusername: alice\r\npassword: Qp=3DKl=E4r8\r\n",
                id,
            )
        },
        "reset password",
        true,
    );
    cases.add(
        "a *secret* field in the subject",
        "4711pinZ",
        &|s, id| head(&format!("vpn pin: {s}"), PLAIN_BODY, id),
        "vpn pin: [redacted]",
        false,
    );
}

/// Every way a secret can arrive, each with a secret of its own (so a
/// leak names the case), some with non-ASCII and `=` that the encodings
/// must escape.
fn corpus() -> Vec<Case> {
    let mut cases = Corpus::default();
    subject_cases(&mut cases);
    body_cases(&mut cases);
    cases.0
}

/// Every file under `dir`, symbolic links not followed.
fn walk(dir: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            pending.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        out.push((path, meta));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The echo playbook, and then a copy of the journal's WAL and SHM taken
/// while the helpdesk has them open: once it exits, SQLite has emptied the
/// WAL, and a test of its bytes then would prove nothing.
fn snapshotting_playbook(state: &Path) -> String {
    let wal = state.join("journal.sqlite-wal").display().to_string();
    let shm = state.join("journal.sqlite-shm").display().to_string();
    echo_playbook()
        + "    - name: Copy the journal's WAL and SHM as they are now\n"
        + "      ansible.builtin.copy:\n"
        + "        src: \"{{ item }}\"\n"
        + "        dest: \"{{ lookup('ansible.builtin.env', 'HELPDESK_TEST_OUT') }}.{{ item | basename }}\"\n"
        + "        remote_src: true\n"
        + "        mode: \"0600\"\n"
        + &format!("      loop: [\"{wal}\", \"{shm}\"]\n")
        // A careless playbook prints the secret it was given: the run log
        // and the result JSON in the state folder must not keep it.
        + "    - name: Print the secret, carelessly\n"
        + "      ansible.builtin.debug:\n"
        + "        msg: \"{{ password | default('') }} {{ new_password | default('') }} {{ pin | default('') }}\"\n"
        + "    - name: Fail on the secret, carelessly\n"
        + "      ansible.builtin.fail:\n"
        + "        msg: \"bad {{ password | default('') }}{{ pin | default('') }}\"\n"
        + "      ignore_errors: true\n"
}

/// The helpdesk with the `vpn` type, replying to `smtp`, every playbook the
/// corpus reaches the snapshotting one.
fn secret_desk(smtp: &SmtpServer) -> Helpdesk {
    let mut desk = with_pin_type(Helpdesk::from_defaults()).replying_to(smtp);
    let playbook = snapshotting_playbook(&desk.path().join("state"));
    for name in ["manage_account", "storage", "vpn"] {
        desk = desk.file(&format!("playbooks/{name}.yaml"), &playbook);
    }
    desk
}

/// Runs one case: the secret reaches the playbook in its variable only, not
/// its subject, the log, or the WAL and SHM of the running delivery.
fn run_secret_case(desk: &Helpdesk, case: &Case) {
    let out = exec(
        {
            let mut c = desk.command(&["run"]);
            c.env("HELPDESK_LOG", "debug");
            c
        },
        &case.raw,
    );
    assert_eq!(out.code, 0, "{}: {}", case.name, out.stderr);
    assert!(
        !out.stderr.contains(&case.secret),
        "{}: the secret is in the log:\n{}",
        case.name,
        out.stderr
    );
    let received = desk
        .received()
        .unwrap_or_else(|| panic!("{}: the playbook did not run: {}", case.name, out.stderr));
    assert_eq!(
        received["subject"], case.shown_subject,
        "{}: the playbook's subject",
        case.name
    );
    if case.password_var {
        // The secret itself still reaches the playbook, in its variable.
        assert_eq!(received["password"], case.secret.as_str(), "{}", case.name);
    }
    fs::remove_file(desk.path().join("received.json")).unwrap();
    for companion in ["journal.sqlite-wal", "journal.sqlite-shm"] {
        let snapshot = desk.path().join(format!("received.json.{companion}"));
        let bytes = fs::read(&snapshot).unwrap();
        assert!(
            !contains(&bytes, &case.secret),
            "{}: the secret is in the {companion} of a running delivery",
            case.name
        );
        if companion.ends_with("wal") {
            // The control: the snapshot holds this message's row.
            assert!(
                contains(&bytes, &case.message_id),
                "{}: WAL without the row",
                case.name
            );
        }
        fs::remove_file(snapshot).unwrap();
    }
}

/// Replies: one per mail, Subject `Re: <subject as shown>`, decoded.
fn check_secret_replies(smtp: &SmtpServer, cases: &[Case]) {
    let replies = smtp.received();
    assert_eq!(replies.len(), cases.len());
    for case in cases {
        let reply = replies
            .iter()
            .find(|r| r.header("In-Reply-To").as_deref() == Some(&format!("<{}>", case.message_id)))
            .unwrap_or_else(|| panic!("{}: no reply", case.name));
        let parsed = mail_parser::MessageParser::default()
            .parse(reply.raw.as_bytes())
            .unwrap();
        let expected = if case.shown_subject.starts_with("Re:") {
            case.shown_subject.clone()
        } else {
            format!("Re: {}", case.shown_subject)
        };
        assert_eq!(parsed.subject(), Some(expected.as_str()), "{}", case.name);
        assert!(
            !reply.raw.contains(&case.secret),
            "{}: {}",
            case.name,
            reply.raw
        );
        assert!(!reply.body().contains(&case.secret), "{}", case.name);
    }
}

/// The journal: every row's subject as shown; `log` and `show` too.
fn check_secret_journal(desk: &Helpdesk, cases: &[Case]) {
    let rows = desk.log_rows();
    assert_eq!(rows.len(), cases.len());
    let table = exec(desk.command(&["log"]), b"");
    assert_eq!(table.code, 0, "{}", table.stderr);
    for case in cases {
        let row = rows
            .iter()
            .find(|r| r["message_id"] == case.message_id.as_str())
            .unwrap_or_else(|| panic!("{}: no row", case.name));
        assert_eq!(row["outcome"], "done", "{}: {row}", case.name);
        assert_eq!(row["subject"], case.shown_subject, "{}", case.name);
        assert_eq!(
            row["spool_path"],
            Value::Null,
            "{}: a mail that gave a secret is not archived",
            case.name
        );
        let show = exec(desk.command(&["show", &row["id"].to_string()]), b"");
        assert_eq!(show.code, 0, "{}", show.stderr);
        assert!(
            show.stdout.contains(&case.shown_subject),
            "{}: {}",
            case.name,
            show.stdout
        );
        for (what, text) in [
            ("log", &table.stdout),
            ("log --format json", &serde_json::to_string(&rows).unwrap()),
            ("show", &show.stdout),
        ] {
            assert!(
                !text.contains(&case.secret),
                "{}: in {what}:\n{text}",
                case.name
            );
        }
    }
}

/// No byte of any file in the state folder holds a secret (the journal,
/// its WAL and SHM, run logs, results, whatever else is there), and no
/// archived mail is one of these, in any encoding.
fn check_secret_state(state: &Path, cases: &[Case]) {
    let files: Vec<PathBuf> = walk(state)
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .map(|(p, _)| p)
        .collect();
    for journal in ["journal.sqlite", "journal.sqlite-wal"] {
        assert!(
            files.contains(&state.join(journal)),
            "{journal} not found: {files:?}"
        );
    }
    for file in &files {
        let bytes = fs::read(file).unwrap();
        for case in cases {
            assert!(
                !contains(&bytes, &case.secret),
                "{}: the secret is in {}",
                case.name,
                file.display()
            );
            let is_archived =
                file.starts_with(state.join("archive")) && contains(&bytes, &case.message_id);
            assert!(
                !is_archived,
                "{}: archived as {}",
                case.name,
                file.display()
            );
        }
    }
    assert!(
        !files.iter().any(
            |f| f.starts_with(state.join("spool")) && f.extension().is_some_and(|x| x == "eml")
        )
    );
}

/// The control: a mail without a secret is archived, its subject kept.
fn check_plain_mail_is_archived(desk: &Helpdesk, state: &Path) {
    let id = unique_id();
    let plain = head(
        "quota",
        "Content-Type: text/plain\r\n\r\nplease increase my storage quota by 2 GB\r\n",
        &id,
    );
    assert_eq!(desk.run(plain.as_bytes()).code, 0);
    let row = desk.log_rows().remove(0);
    assert_eq!(row["message_id"], id.as_str());
    assert_eq!(row["subject"], "quota");
    let archived = row["spool_path"]
        .as_str()
        .unwrap_or_else(|| panic!("not archived: {row}"));
    assert!(
        Path::new(archived).starts_with(state.join("archive")),
        "{archived}"
    );
    assert_eq!(fs::read(archived).unwrap(), plain.as_bytes());
}

#[test]
fn a_secret_in_the_subject_or_body_is_redacted_everywhere_and_never_archived() {
    let smtp = SmtpServer::plain();
    let desk = secret_desk(&smtp);
    let cases = corpus();
    for case in &cases {
        run_secret_case(&desk, case);
    }
    check_secret_replies(&smtp, &cases);
    check_secret_journal(&desk, &cases);
    let state = desk.path().join("state");
    check_secret_state(&state, &cases);
    check_plain_mail_is_archived(&desk, &state);
}

/// `helpdesk <args>` under `umask 000`, the loosest an MTA could hand down.
fn under_umask_000(desk: &Helpdesk, args: &[&str]) -> Command {
    let inner = desk.command(args);
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
}

/// Runs a new user (twice), a quota request and an unclassified mail under
/// `umask 000`, then `retry`: every kind of file the helpdesk keeps.
fn fill_state_under_umask_000(desk: &Helpdesk, smtp: &SmtpServer) {
    let new_user = crate::support::mail(
        "hr@example.com",
        "New User",
        "username: john\npassword: 1234\nfirst_name: John\nlast_name: Smith",
    );
    let quota = crate::support::mail(
        "alice@example.com",
        "quota",
        "please increase my storage quota by 2 GB",
    );
    let unclassified = crate::support::mail("carol@example.com", "Renewal of contract", "hi");
    for (mail, times) in [(&new_user, 2), (&quota, 1), (&unclassified, 1)] {
        for _ in 0..times {
            let out = exec(under_umask_000(desk, &["run"]), mail);
            assert_eq!(out.code, 0, "{}", out.stderr);
        }
    }
    let out = exec(under_umask_000(desk, &["retry"]), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let outcomes: Vec<String> = desk
        .log_rows()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(outcomes, ["ignored", "done", "duplicate", "done"]);
    assert_eq!(smtp.received().len(), 3, "replies were sent");
}

/// Allow-list: folders 0700, files 0600, nothing else; and everything the
/// helpdesk keeps was there to be checked. Returns the run files.
fn check_state_modes(state: &Path) -> Vec<String> {
    let entries = walk(state);
    let mut kinds = std::collections::BTreeSet::new();
    for (path, meta) in &entries {
        let mode = meta.permissions().mode() & 0o7777;
        let relative = path.strip_prefix(state).unwrap().display().to_string();
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{relative}: mode {mode:o}");
        } else {
            assert!(meta.is_file(), "{relative}: neither a file nor a folder");
            assert_eq!(mode, 0o600, "{relative}: mode {mode:o}");
        }
        let kind = relative.split('/').next().unwrap_or_default().to_owned();
        kinds.insert(
            if kind.ends_with(".sqlite-wal") || kind.ends_with(".sqlite-shm") {
                kind
            } else {
                kind.split('.').next().unwrap_or_default().to_owned()
            },
        );
    }
    for kind in [
        "",
        "journal",
        "journal.sqlite-wal",
        "journal.sqlite-shm",
        "spool",
        "archive",
        "runs",
        "plugins",
        "slots",
        "replies",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind:?} in the state folder: {kinds:?}"
        );
    }
    let run_files: Vec<String> = entries
        .iter()
        .filter(|(p, _)| p.starts_with(state.join("runs")))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        run_files.iter().any(|p| p.ends_with(".log")),
        "{run_files:?}"
    );
    assert!(
        run_files.iter().any(|p| p.ends_with(".json")),
        "{run_files:?}"
    );
    assert!(
        entries
            .iter()
            .any(|(p, _)| p.starts_with(state.join("archive"))
                && p.extension().is_some_and(|x| x == "eml")),
        "mail without a secret is archived"
    );
    run_files
}

/// The metrics file, outside the state folder, for a collector running
/// as another user: 0644 in a 0755 folder, and not in the state folder.
fn check_metrics_file_is_readable(desk: &Helpdesk, state: &Path) {
    let metrics = desk.path().join("metrics/helpdesk.prom");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&metrics), 0o644);
    assert_eq!(mode(metrics.parent().unwrap()), 0o755);
    assert!(
        fs::read_to_string(&metrics)
            .unwrap()
            .contains("helpdesk_messages_total{request_type=\"manage_users\",outcome=\"done\"} 1")
    );
    assert!(!state.join("metrics.prom").exists());
}

/// `check` is quiet about all this, and reports what is loosened.
fn check_reports_loosened_modes(desk: &Helpdesk, state: &Path, run_files: &[String]) {
    let quiet = exec(desk.command(&["check"]), b"");
    assert!(
        !quiet.stdout.contains(&state.display().to_string()),
        "{}",
        quiet.stdout
    );
    assert!(
        !quiet.stderr.contains(&state.display().to_string()),
        "{}",
        quiet.stderr
    );
    let log = run_files.iter().find(|p| p.ends_with(".log")).unwrap();
    fs::set_permissions(log, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(state, fs::Permissions::from_mode(0o755)).unwrap();
    let wal = state.join("journal.sqlite-wal");
    fs::set_permissions(&wal, fs::Permissions::from_mode(0o666)).unwrap();
    let out = exec(desk.command(&["check"]), b"");
    let said = format!("{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with(&state.display().to_string()))
        .collect();
    assert_eq!(lines.len(), 3, "{said}");
    let expect = |path: &str, head: &str, fix: &str| {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{path}: {head}"))
                    && l.ends_with(&format!("{fix} {path}"))),
            "no {path}: {head} ... {fix} {path}:\n{said}"
        );
    };
    expect(
        log,
        "warning: readable by group or others (mode 644)",
        "chmod 600",
    );
    expect(
        &state.display().to_string(),
        "warning: listable by group or others (mode 755)",
        "chmod 700",
    );
    expect(
        &wal.display().to_string(),
        "error: writable by group or others (mode 666)",
        "chmod 600",
    );
    assert_eq!(out.code, 78, "an error in check: {said}");
}

#[test]
fn under_umask_000_every_file_in_the_state_folder_is_0600_and_every_folder_0700() {
    let smtp = SmtpServer::plain();
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let config = format!(
        "{}metrics_file: metrics/helpdesk.prom\n",
        desk.config_text()
    );
    let desk = desk.config(&config).replying_to(&smtp);
    let state = desk.path().join("state");
    assert!(!state.exists());
    fill_state_under_umask_000(&desk, &smtp);
    let run_files = check_state_modes(&state);
    check_metrics_file_is_readable(&desk, &state);
    check_reports_loosened_modes(&desk, &state, &run_files);
}

/// The default metrics file sits in the state folder: 0644, behind the
/// 0700 folder, so a collector needs `metrics_file` (as docs/configuration.md says).
#[test]
fn the_default_metrics_file_is_0644_inside_the_private_state_folder() {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let quota = crate::support::mail("alice@example.com", "Renewal of contract", "hi");
    let out = exec(under_umask_000(&desk, &["run"]), &quota);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let state = desk.path().join("state");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("metrics.prom")), 0o644);
    assert_eq!(mode(&state.join("journal.sqlite")), 0o600);
}

#[test]
fn the_test_base64_is_base64() {
    assert_eq!(base64(""), "");
    assert_eq!(base64("f"), "Zg==");
    assert_eq!(base64("fo"), "Zm8=");
    assert_eq!(base64("foobar"), "Zm9vYmFy");
    assert_eq!(base64("Grüße"), "R3LDvMOfZQ==");
}
