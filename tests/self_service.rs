//! Issue 11: self-service that cannot escalate. A helpdesk folder written
//! by `helpdesk setup` (the shipped phrasebooks and playbooks, and the
//! grants it writes: `*@example.com` with `scope: self`, administrators with
//! scope any), the built binary and the real `ansible-playbook`.
//!
//! The escalation attempts are generated from the shipped phrasebooks, not
//! listed by hand: for every request type, every field a mail can set that
//! is not under its `*self*` (every label's variable, every flag, the
//! quantity) is tried by a user on their own account. Each must be refused
//! with a reply naming exactly the fields, and start nothing; each must
//! still run for an administrator; and every field that *is* under
//! `*self*` must run for the user.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{LOCAL_INVENTORY, ansible_playbook, exec, helpdesk, mail, repo, setup_for};

/// Request types that run a playbook, as shipped.
const TYPES: &[&str] = &["manage_account", "manage_users", "query_account", "storage"];

/// Sections of a phrasebook that are not flags (see src/desk/phrasebook.rs).
const SPECIAL: &[&str] = &[
    "targets",
    "fields",
    "selftargets",
    "modifiers",
    "unit",
    "required",
    "secret",
    "patterns",
    "self",
];

/// A shipped phrasebook, read the way its format documents it.
#[derive(Debug)]
struct Book {
    /// `*targets*` labels in order; the first one found fills `targets`.
    targets: Vec<String>,
    /// `*fields*` labels.
    fields: Vec<String>,
    /// Flag sections: name and first phrase.
    flags: Vec<(String, String)>,
    /// `by <n> gb`, when the book reads a quantity.
    quantity: Option<String>,
    /// `*self*`, or `None` without the section.
    self_service: Option<Vec<String>>,
}

/// `*name*` sections with their phrases (quotes removed).
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('*').and_then(|l| l.strip_suffix('*')) {
            out.push((name.to_owned(), Vec::new()));
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
            rest = &rest[start..];
            let (phrase, after) = match rest.chars().next() {
                Some(q @ ('\'' | '"')) => {
                    let end = rest[1..].find(q).unwrap() + 1;
                    (&rest[1..end], &rest[end + 1..])
                }
                _ => {
                    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                    (&rest[..end], &rest[end..])
                }
            };
            out.last_mut().unwrap().1.push(phrase.to_owned());
            rest = after;
        }
    }
    out
}

fn book(dir: &Path, request_type: &str) -> Book {
    let text =
        fs::read_to_string(dir.join(format!("phrasebooks/{request_type}_phrases.txt"))).unwrap();
    let parsed = sections(&text);
    let get = |name: &str| {
        parsed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
    };
    let first = |name: &str| get(name).and_then(|p| p.first().cloned());
    let quantity = match (first("modifiers"), first("unit")) {
        (None, None) => None,
        (m, u) => Some(format!(
            "{} 5 {}",
            m.unwrap_or_default(),
            u.unwrap_or_default()
        )),
    };
    Book {
        targets: get("targets").unwrap_or_default(),
        fields: get("fields").unwrap_or_default(),
        flags: parsed
            .iter()
            .filter(|(n, _)| !SPECIAL.contains(&n.as_str()))
            .map(|(n, p)| (n.clone(), p[0].clone()))
            .collect(),
        quantity,
        self_service: get("self"),
    }
}

fn var_of(label: &str) -> String {
    label.trim_end_matches(':').trim().replace(' ', "_")
}

/// One thing a mail can set: the variables it fills and the line that
/// fills them.
#[derive(Debug, Clone)]
struct Field {
    vars: Vec<String>,
    line: String,
}

/// Everything a mail can set in `book`, each on its own: every label but
/// the first `*targets*` one (which the mail uses for the account, so its
/// own variable can never be filled), every flag, and the quantity (whose
/// three variables only ever come together).
fn every_field(book: &Book) -> Vec<Field> {
    let mut out = Vec::new();
    for label in book.targets.iter().skip(1).chain(&book.fields) {
        out.push(Field {
            vars: vec![var_of(label)],
            line: format!("{label} sudo"),
        });
    }
    for (flag, phrase) in &book.flags {
        out.push(Field {
            vars: vec![flag.clone()],
            line: phrase.clone(),
        });
    }
    if let Some(quantity) = &book.quantity {
        out.push(Field {
            vars: vec!["amount".into(), "modifiers".into(), "unit".into()],
            line: quantity.clone(),
        });
    }
    out
}

/// A subject each request type classifies by, and whose words set nothing.
fn subject(request_type: &str) -> &'static str {
    match request_type {
        "manage_account" => "Password",
        "manage_users" => "Create account",
        "query_account" => "Query account",
        "storage" => "Quota",
        _ => unreachable!(),
    }
}

/// A folder as `helpdesk setup` writes it for example.com, with `admins`
/// as administrators and no sender authentication (a closed relay: this
/// file is about grants, not authentication).
struct Desk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Desk {
    fn setup(admins: &[String]) -> Self {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("desk");
        let mut command = setup_for("example.com");
        command
            .args(["--require", "none", "--ansible"])
            .arg(ansible_playbook())
            .arg("--dir")
            .arg(&dir);
        for admin in admins {
            command.args(["--admin", admin]);
        }
        let out = exec(command, b"");
        assert_eq!(out.code, 0, "setup: {}{}", out.stdout, out.stderr);
        // The shipped folder: what setup copied is what the repository ships.
        for folder in ["phrasebooks", "playbooks", "help_templates"] {
            for entry in fs::read_dir(repo().join(folder)).unwrap() {
                let name = entry.unwrap().file_name();
                assert_eq!(
                    fs::read(dir.join(folder).join(&name)).unwrap(),
                    fs::read(repo().join(folder).join(&name)).unwrap(),
                    "{folder}/{name:?}"
                );
            }
        }
        fs::write(dir.join("inventory"), LOCAL_INVENTORY).unwrap();
        Self {
            dir,
            _parent: parent,
        }
    }

    fn config_text(&self) -> String {
        fs::read_to_string(self.dir.join("config.yaml")).unwrap()
    }

    /// Every playbook replaced by one that writes the variables it received.
    fn echoing(self, wanted: &BTreeSet<String>) -> Self {
        let quoted: Vec<String> = wanted.iter().map(|w| format!("{w:?}")).collect();
        let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
        let playbook = crate::support::echo_playbook_of(&quoted);
        for request_type in TYPES {
            fs::write(
                self.dir.join(format!("playbooks/{request_type}.yaml")),
                &playbook,
            )
            .unwrap();
        }
        self
    }

    fn out_path(&self) -> PathBuf {
        self.dir.join("received.json")
    }

    /// Runs one mail; returns what the playbook received (`None`: nothing
    /// ran) and the reply, if one was written.
    fn run(&self, raw: &[u8]) -> (Option<Value>, Option<String>) {
        let _ = fs::remove_file(self.out_path());
        let before = self.replies();
        let mut command = helpdesk();
        command
            .arg("--config")
            .arg(self.dir.join("config.yaml"))
            .arg("run")
            .env("HELPDESK_TEST_OUT", self.out_path());
        let out = exec(command, raw);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let received = fs::read_to_string(self.out_path())
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap());
        let reply = self
            .replies()
            .into_iter()
            .find(|r| !before.contains(r))
            .map(|path| unfold(&fs::read_to_string(path).unwrap()));
        (received, reply)
    }

    fn replies(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.dir.join("replies")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect()
    }

    /// Every run log, one after the other.
    fn run_log_text(&self) -> String {
        let mut text = String::new();
        for entry in fs::read_dir(self.dir.join("state/runs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "log") {
                text.push_str(&fs::read_to_string(path).unwrap());
            }
        }
        text
    }

    fn run_logs(&self) -> usize {
        fs::read_dir(self.dir.join("state/runs")).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .count()
        })
    }
}

/// The reply's text with quoted-printable soft line breaks undone.
fn unfold(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The fields a refusal names, from `<fields>: you may not set`.
fn named(reply: &str) -> Option<BTreeSet<String>> {
    let at = reply.find(": you may not set th")?;
    let start = reply[..at].rfind("carried out: ")? + "carried out: ".len();
    Some(reply[start..at].split(", ").map(str::to_owned).collect())
}

/// What the echo playbooks report: every variable any shipped phrasebook
/// can set, and the ones helpdesk sets.
fn wanted(books: &[(&str, Book)]) -> BTreeSet<String> {
    let mut wanted: BTreeSet<String> = ["targets", "selftargets", "request_type", "from"]
        .map(str::to_owned)
        .into();
    for (_, book) in books {
        for field in every_field(book) {
            wanted.extend(field.vars);
        }
    }
    wanted
}

fn shipped_books() -> Vec<(&'static str, Book)> {
    TYPES.iter().map(|t| (*t, book(&repo(), t))).collect()
}

#[test]
fn setup_writes_self_service_grants_and_says_what_they_allow() {
    let desk = Desk::setup(&["boss@example.com".into()]);
    let config = desk.config_text();
    assert!(
        config
            .contains("  - requests: [\"*\"]\n    senders: [\"*@example.com\"]\n    scope: self\n"),
        "{config}"
    );
    assert!(
        config.contains("  - requests: [\"*\"]\n    senders: [\"boss@example.com\"]\n\n"),
        "{config}"
    );
    for words in [
        "may set only what its phrasebook lists under\n  # *self*",
        "reset their own password",
        "clear\n  # their own failed logins",
        "creating or deleting accounts are refused",
    ] {
        assert!(config.contains(words), "{words:?} not in\n{config}");
    }
    // What the comment promises is what the shipped *self* sections say.
    let books = shipped_books();
    let listed = |t: &str| {
        books
            .iter()
            .find(|(n, _)| *n == t)
            .and_then(|(_, b)| b.self_service.clone())
    };
    assert_eq!(
        listed("manage_account").unwrap(),
        [
            "password",
            "new_password",
            "reset",
            "clear_failures",
            "leave"
        ]
    );
    assert_eq!(listed("storage").unwrap(), ["queries"]);
    assert_eq!(listed("query_account").unwrap(), Vec::<String>::new());
    assert_eq!(listed("manage_users"), None);
    let mut check = helpdesk();
    check
        .arg("--config")
        .arg(desk.dir.join("config.yaml"))
        .arg("check");
    let out = exec(check, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.lines().any(|l| l.starts_with("0 error(s)")),
        "{}",
        out.stderr
    );
}

/// Every field of every shipped type, and whether a user may set it on
/// their own account (every variable it sets is under `*self*`).
fn self_service_cases(books: &[(&'static str, Book)]) -> Vec<(&'static str, Field, bool)> {
    let mut cases = Vec::new();
    for (request_type, book) in books {
        let allowed = book.self_service.clone();
        for field in every_field(book) {
            let ok = allowed
                .as_ref()
                .is_some_and(|a| field.vars.iter().all(|v| a.contains(v)));
            cases.push((*request_type, field, ok));
        }
    }
    cases
}

/// `run` ran the playbook for `account`, and each of `vars` arrived set.
fn assert_ran(what: &str, run: (Option<Value>, Option<String>), account: &str, vars: &[String]) {
    let (received, reply) = run;
    let received = received.unwrap_or_else(|| panic!("{what}: did not run: {reply:?}"));
    assert_eq!(received["targets"], account, "{what}");
    for var in vars {
        assert!(
            !matches!(received[var], Value::Null | Value::Bool(false)),
            "{what}: {var} did not arrive: {received}"
        );
    }
}

/// `run`, a user's `field` outside `*self*`, ran nothing, and its reply
/// names the fields (or, for a type without `*self*`, says only an
/// administrator may ask for it) without repeating the value.
fn assert_refused(
    what: &str,
    run: (Option<Value>, Option<String>),
    request_type: &str,
    book: &Book,
    field: &Field,
) {
    let (received, reply) = run;
    assert_eq!(received, None, "{what} ran");
    let reply = reply.unwrap_or_else(|| panic!("{what}: no reply"));
    if book.self_service.is_none() {
        assert!(
            reply.contains(&format!(
                "not carried out: only an administrator may ask for {request_type}"
            )),
            "{what}: {reply}"
        );
    } else {
        let want: BTreeSet<String> = field.vars.iter().cloned().collect();
        assert_eq!(named(&reply), Some(want), "{what}: {reply}");
        assert!(
            reply.contains("for your own account; ask an administrator"),
            "{what}: {reply}"
        );
    }
    assert!(
        !reply.contains("sudo"),
        "{what}: the value is repeated: {reply}"
    );
}

#[test]
fn every_field_outside_star_self_is_refused_by_name_and_runs_for_an_administrator() {
    let books = shipped_books();
    let cases = self_service_cases(&books);
    let admins: Vec<String> = (0..cases.len())
        .map(|n| format!("admin{n}@example.com"))
        .collect();
    let desk = Desk::setup(&admins).echoing(&wanted(&books));

    let (mut refused, mut allowed) = (0, 0);
    for (n, (request_type, field, ok)) in cases.iter().enumerate() {
        let book = &books.iter().find(|(t, _)| t == request_type).unwrap().1;
        let account = format!("user{n}");
        let body = format!("{} {account}\n{}", book.targets[0], field.line);
        // The user, on their own account.
        let run = desk.run(&mail(
            &format!("{account}@example.com"),
            subject(request_type),
            &body,
        ));
        let what = format!("{request_type} {:?} by {account}", field.line);
        if *ok {
            assert_ran(&what, run, &account, &field.vars);
            allowed += 1;
        } else {
            assert_refused(&what, run, request_type, book, field);
            refused += 1;
        }
        // An administrator (scope any), on the same account: it runs.
        let run = desk.run(&mail(&admins[n], subject(request_type), &body));
        assert_ran(
            &format!("{what}, by an administrator"),
            run,
            &account,
            &field.vars,
        );
    }
    assert_eq!(desk.run_logs(), allowed + cases.len(), "one run per run");
    // The generated class, as counted from the shipped phrasebooks: a change
    // to them shows up here and needs a look.
    assert_eq!((refused, allowed), (28, 6), "refused, allowed");
}

/// The examples the help promises to users run: reset one's password,
/// clear one's failed logins, check one's quota, look up one's account.
fn check_the_examples_the_help_promises(desk: &Desk) {
    for (subject, body, var) in [
        (
            "Reset password",
            "I forgot my password, please reset it.\nusername: dave\nnew_password: \"Correct horse 42\"",
            "new_password",
        ),
        (
            "Account locked out",
            "I am locked out, please clear my failed logins.",
            "clear_failures",
        ),
        ("Storage quota", "How much space have I left?", "queries"),
        (
            "Query account",
            "Please send me the details of my account.",
            "selftargets",
        ),
    ] {
        let run = desk.run(&mail("dave@example.com", subject, body));
        assert_ran(subject, run, "dave", &[var.to_owned()]);
    }
}

#[test]
fn a_type_without_star_self_is_refused_even_bare_and_the_account_must_be_ones_own() {
    let books = shipped_books();
    let desk = Desk::setup(&["boss@example.com".into()]).echoing(&wanted(&books));
    // manage_users with nothing but the sender's own name: creating one's
    // own account is not self-service.
    let (received, reply) = desk.run(&mail(
        "carol@example.com",
        "Create account",
        "username: carol",
    ));
    assert_eq!(received, None);
    assert!(
        reply
            .unwrap()
            .contains("only an administrator may ask for manage_users"),
    );
    // Allowed fields, about someone else or about no one: refused.
    for (body, why) in [
        (
            "reset the password of username: bob\nnew_password: \"Correct horse 42\"",
            "and the request names another",
        ),
        (
            "reset the password\nnew_password: \"Correct horse 42\"",
            "and the request names no account",
        ),
    ] {
        let (received, reply) = desk.run(&mail("carol@example.com", "Password", body));
        assert_eq!(received, None, "{body}");
        assert!(
            reply.as_deref().unwrap_or_default().contains(why),
            "{body}: {reply:?}"
        );
    }
    check_the_examples_the_help_promises(&desk);
    // What the help once showed users, "increase my quota", is now refused.
    let (received, reply) = desk.run(&mail(
        "erin@example.com",
        "Increase Storage Quota",
        "Hello, I'd like to increase my storage quota by 9.3 GB please.",
    ));
    assert_eq!(received, None);
    assert_eq!(
        named(&reply.unwrap()),
        Some(
            ["amount", "modifiers", "unit", "verbs_positive"]
                .map(str::to_owned)
                .into()
        )
    );
    // help runs nothing and stays open.
    let (received, reply) = desk.run(&mail("erin@example.com", "Help", "help with: storage"));
    assert_eq!(received, None);
    assert!(reply.unwrap().contains("You can check your own quota"));
}

#[test]
fn the_shipped_manage_account_playbook_clears_failed_logins_and_refuses_a_group() {
    // The real playbooks: nobody (uid 65534) asks about their own account.
    // faillock --reset only removes the failed-login tally (if any), so this
    // changes nothing else on the machine.
    let desk = Desk::setup(&["boss@example.com".into()]);
    let (received, reply) = desk.run(&mail(
        "nobody@example.com",
        "Account locked out",
        "I am locked out, please clear my failed logins.\nusername: nobody",
    ));
    assert_eq!(received, None, "the shipped playbook writes no echo");
    let reply = reply.unwrap();
    assert!(reply.contains("request is done (for nobody)"), "{reply}");
    assert_eq!(desk.run_logs(), 1);
    let log = desk.run_log_text();
    assert!(
        log.contains("Account 'nobody' on localhost: cleared the failed logins."),
        "{log}"
    );
    assert!(log.contains("failed=0"), "{log}");
    let (_, reply) = desk.run(&mail(
        "nobody@example.com",
        "Permissions",
        "Please add my account to a group.\nusername: nobody\ngroup: sudo",
    ));
    let reply = reply.unwrap();
    assert_eq!(named(&reply), Some(["group".to_owned()].into()), "{reply}");
    assert_eq!(desk.run_logs(), 1, "nothing ran for the group");
    // And with an administrator's lock, the user cannot lift it.
    let (_, reply) = desk.run(&mail(
        "nobody@example.com",
        "Unlock",
        "Please unlock my account.\nusername: nobody",
    ));
    assert_eq!(named(&reply.unwrap()), Some(["unlock".to_owned()].into()));
    assert_eq!(desk.run_logs(), 1);
}
