//! Issue 6: `helpdesk setup` through a real pseudo-terminal, `helpdesk
//! check` on a folder with one of each error, and the operator's commands.
//! Issue 15: the wizard walked with Enter alone in a real terminal (tmux),
//! its SMTP login, lower-cased domains, `setup --help`, and `check`
//! failing on what would fail every request. Issue 17: setup's intake, a
//! mailbox (IMAP) or a Maildir read by `helpdesk fetch`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rexpect::session::PtySession;

use crate::support::{Helpdesk, ansible_playbook, exec, helpdesk, need, repo, setup_for};

const DOWN: &str = "\x1b[B";
/// In a wizard walk's keys: the line is a secret, typed once the password
/// prompt has turned echo off (see `await_secret_prompt`).
const SECRET: &str = "<secret>";

fn wizard(args: &[&str]) -> PtySession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_helpdesk"));
    command
        .arg("setup")
        .args(args)
        .env("TERM", "xterm-256color")
        .env_remove("HELPDESK_CONFIG");
    rexpect::session::spawn_command(command, Some(30_000)).unwrap()
}

/// A wizard for `<a new temporary folder>/desk`, asking for the mail domain.
fn wizard_for_a_new_folder() -> (tempfile::TempDir, PathBuf, PtySession) {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("desk");
    let mut p = wizard(&[]);
    p.exp_string("Helpdesk folder").unwrap();
    p.send_line(&dir.display().to_string()).unwrap();
    p.exp_string("mail domain").unwrap();
    (parent, dir, p)
}

/// Presses `keys`, then types `line` and Enter, then waits for `next`.
fn answer(p: &mut PtySession, keys: &str, line: &str, next: &str) {
    if !keys.is_empty() {
        p.send(keys).unwrap();
    }
    p.send_line(line).unwrap();
    p.exp_string(next).unwrap();
}

/// Waits until the program has turned the terminal's echo off: a password
/// prompt switches it off with TCSAFLUSH, which throws away whatever was
/// typed before, so a secret typed as soon as the prompt is drawn may be
/// lost (the prompt then asks again). A person sees the prompt first; the
/// test waits for the terminal to say the same.
fn await_secret_prompt(p: &PtySession) {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let pty = p.process().get_file_handle().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tcgetattr(&pty)
        .unwrap()
        .local_flags
        .contains(LocalFlags::ECHO)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the password prompt never turned echo off"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn the_wizard_writes_a_folder_that_checks_clean_and_dry_runs_a_mail() {
    let user = crate::support::TestUser::new();
    let (parent, dir, mut p) = wizard_for_a_new_folder();
    let ansible = ansible_playbook().display().to_string();
    let down2 = format!("{DOWN}{DOWN}");
    for (keys, line, next) in [
        (
            "",
            "not a domain",
            "not a mail domain: write it like example.com",
        ),
        ("", "example.com", "own address"),
        ("", "", "Where does mail come in?"),
        ("", "", "How do replies leave?"),
        (down2.as_str(), "", "Senders"),
        ("", "", "scope: self"),
        ("", "", "Administrators"),
        ("", "boss@example.com", "authserv-id"),
        ("", "", "Require"),
        (
            "",
            "",
            "Where does your MX write its Authentication-Results?",
        ),
        (DOWN, "", "ansible-playbook"),
        ("", &ansible, "User the mail system runs helpdesk as"),
        ("", "Not A User", "is not a user name"),
        ("", &user.0, "use sudo (become)?"),
        ("", "n", "now?"),
        ("", "y", "Postfix"),
    ] {
        answer(&mut p, keys, line, next);
    }
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains(":0 w") && rest.contains("match all action"),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("user={} argv=", user.0)) && rest.contains("without sudo"),
        "{rest}"
    );

    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    assert!(
        config.contains("helpdesk_address: \"helpdesk@example.com\""),
        "{config}"
    );
    assert!(config.contains("transport: folder"), "{config}");
    assert!(config.contains("helpdesk_become=false"), "{config}");
    assert!(config.contains("  position: below\n"), "{config}");
    assert!(
        config.contains("senders: [\"*@example.com\"]\n    scope: self"),
        "{config}"
    );
    assert!(
        config.contains("senders: [\"boss@example.com\"]"),
        "{config}"
    );
    assert!(config.contains("authserv_id: [\"mx.example.com\"]\n  # dmarc, dkim, spf, or none (a closed internal relay only)\n  require: dmarc"), "{config}");
    for file in [
        "keywords.txt",
        "inventory",
        "phrasebooks/storage_phrases.txt",
        "playbooks/storage.yaml",
        "help_templates/storage_help.txt",
        "reply_templates/success.txt",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let leftovers: Vec<_> = fs::read_dir(parent.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "desk")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    checks_clean_and_dry_runs(&dir);
}

/// `check` finds no error in the folder at `dir`, and `parse` decides its
/// example storage mail with the folder's own playbook, from an
/// administrator of the folder's domain, allowed.
fn checks_clean_and_dry_runs(dir: &Path) {
    let config_path = dir.join("config.yaml");
    let mut check = helpdesk();
    check.arg("--config").arg(&config_path).arg("check");
    let out = exec(check, b"");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("0 error(s)"), "{}", out.stderr);

    let mut parse = helpdesk();
    parse
        .arg("--config")
        .arg(&config_path)
        .args(["parse", "--format", "json"])
        .arg(dir.join("examples/storage.eml"));
    let out = exec(parse, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = out.json();
    assert_eq!(json["request_type"], "storage");
    // Issue 15: the example is from the folder's (first) administrator, so
    // it is about their account.
    let from = json["vars"]["from"].as_str().unwrap();
    assert_eq!(json["vars"]["targets"], from.split('@').next().unwrap());
    assert!(
        json["trust"]["access"]
            .as_str()
            .is_some_and(|a| a.starts_with("allowed: ")),
        "{}",
        out.stdout
    );
    assert!(
        json["playbook"]
            .as_str()
            .unwrap()
            .starts_with(&dir.display().to_string())
    );
}

#[test]
fn ctrl_c_mid_way_writes_nothing() {
    let (parent, dir, mut p) = wizard_for_a_new_folder();
    answer(&mut p, "", "example.com", "own address");
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
    assert!(!dir.exists());
    assert_eq!(
        fs::read_dir(parent.path()).unwrap().count(),
        0,
        "nothing at all was written"
    );
}

#[test]
fn setup_refuses_to_prompt_without_a_terminal_and_works_from_flags_and_answers() {
    let mut command = helpdesk();
    command.arg("setup");
    let out = exec(command, b"");
    assert_eq!(out.code, 64);
    assert!(
        out.stderr.contains("standard input is not a terminal"),
        "{}",
        out.stderr
    );

    let parent = tempfile::tempdir().unwrap();
    let answers = parent.path().join("answers.yaml");
    let dir = parent.path().join("desk");
    fs::write(&answers, format!("dir: {}\ndomain: example.org\ntransport: folder\nadmins: [root@example.org]\nrequire: dkim\nposition: below\n", dir.display())).unwrap();
    let mut command = helpdesk();
    command.arg("setup").arg("--answers").arg(&answers);
    let out = exec(command, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    assert!(
        config.contains("require: dkim") && config.contains("root@example.org"),
        "{config}"
    );
    assert!(config.contains("  position: below\n"), "{config}");

    // Re-run on the existing folder: changed files are kept, config.yaml is
    // rewritten with a backup.
    fs::write(dir.join("keywords.txt"), "*storage*\nquota\n").unwrap();
    let mut command = setup_for("example.net");
    command.args(["--position", "above", "--dir"]).arg(&dir);
    let out = exec(command, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        fs::read_to_string(dir.join("config.yaml"))
            .unwrap()
            .contains("  position: above\n")
    );
    assert!(
        out.stdout.contains("kept your keywords.txt"),
        "{}",
        out.stdout
    );
    assert_eq!(
        fs::read_to_string(dir.join("keywords.txt")).unwrap(),
        "*storage*\nquota\n"
    );
    assert!(
        fs::read_to_string(dir.join("config.yaml"))
            .unwrap()
            .contains("helpdesk@example.net")
    );
    assert!(
        fs::read_to_string(dir.join("config.yaml.bak"))
            .unwrap()
            .contains("helpdesk@example.org")
    );

    let mut command = helpdesk();
    command
        .args([
            "setup",
            "--non-interactive",
            "--domain",
            "bad domain",
            "--dir",
        ])
        .arg(parent.path().join("x"));
    let out = exec(command, b"");
    assert_eq!(out.code, 64);
    assert!(out.stderr.contains("not a mail domain"), "{}", out.stderr);
    assert!(!parent.path().join("x").exists());
}

fn check(desk: &Helpdesk) -> (i32, Vec<String>) {
    let out = exec(desk.command(&["check"]), b"");
    (out.code, out.stdout.lines().map(str::to_owned).collect())
}

#[test]
fn check_reports_one_of_each_error_at_its_file_and_line() {
    let desk = Helpdesk::from_defaults();
    let d = desk.path().display().to_string();
    let secret = desk.path().join("smtp.secret");
    fs::write(&secret, "x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let config = format!(
        "helpdesk_dir: .\nansible:\n  command: {}\n  timeout: 2m\nauthentication: {{require: none}}\naccess:\n  - requests: [storage]\n    senders: ['*']\n  - requests: [printers]\n    senders: ['*']\nhelpdesk_address: helpdesk@example.com\nmail:\n  smtp:\n    host: 127.0.0.1\n    username: hd\n    password_file: smtp.secret\n",
        ansible_playbook().display()
    );
    let desk = desk
        .config(&config)
        .file("keywords.txt", "*help*\nhelp\n*storage*\nquota disk\n*backup*\nbackup 'restore files' disk\n*broken*\nbroken\n*nobook*\nnobook\n")
        .file("phrasebooks/broken_phrases.txt", "*targets*\nuser:\n*flags*\n'unterminated\n")
        .file("phrasebooks/backup_phrases.txt", "*targets*\nuser:\n")
        .file("playbooks/backup.yaml", "- hosts: all\n  tasks:\n    - name: Bad\n      ansible.builtin.debug:\n        msg: hi\n      not_a_keyword: true\n")
        .file("playbooks/nobook.yaml", "- hosts: all\n  tasks: []\n");
    fs::set_permissions(desk.config_path(), fs::Permissions::from_mode(0o644)).unwrap();
    let (code, lines) = check(&desk);
    assert_eq!(code, 78, "{lines:#?}");
    let located: Vec<String> = lines
        .iter()
        .map(|l| l.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": "))
        .collect();
    let expected = [
        format!("{d}/config.yaml:1: warning"),  // readable by others
        format!("{d}/config.yaml:9: error"),    // grant names printers
        format!("{d}/config.yaml:16: warning"), // smtp.secret mode 644
        format!("{d}/keywords.txt:5: warning"), // backup: no help template
        format!("{d}/keywords.txt:6: error"),   // 'disk' in two sections
        format!("{d}/keywords.txt:7: warning"), // broken: no help template
        format!("{d}/keywords.txt:7: error"),   // broken: no playbook
        format!("{d}/keywords.txt:9: warning"), // nobook: no help template
        format!("{d}/keywords.txt:9: error"),   // nobook: no phrasebook
        format!("{d}/phrasebooks/broken_phrases.txt:4: error"), // unterminated quote
        format!("{d}/playbooks/backup.yaml:3: error"), // syntax check
    ];
    let mut got = located.clone();
    got.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(got, want, "{lines:#?}");
    let text = lines.join("\n");
    assert!(
        text.contains("keyword 'disk' is also in *storage* (line 4)"),
        "{text}"
    );
    assert!(text.contains("access grant 2 names 'printers'"), "{text}");
    assert!(text.contains("unterminated quote"), "{text}");
    assert!(text.contains("--syntax-check"), "{text}");
    assert!(text.contains("chmod 600"), "{text}");

    // Config errors are located too, one at a time.
    let desk = desk.config("helpdesk_dir: .\nansible:\n  timout: 5m\n");
    let (code, lines) = check(&desk);
    assert_eq!(code, 78);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{d}/config.yaml:3: error: ")) && lines[0].contains("timout"),
        "{lines:?}"
    );
    let desk = desk.config("helpdesk_dir: .\naccess: [\n");
    let (_, lines) = check(&desk);
    assert!(
        lines[0].starts_with(&format!("{d}/config.yaml:")) && lines[0].contains(": error: "),
        "{lines:?}"
    );
}

#[test]
fn the_shipped_defaults_check_clean() {
    let desk = Helpdesk::from_defaults();
    fs::set_permissions(desk.config_path(), fs::Permissions::from_mode(0o640)).unwrap();
    let (code, lines) = check(&desk);
    let problems: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("no mail: section"))
        .collect();
    assert_eq!(code, 0, "{lines:#?}");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn completions_man_and_json_logs() {
    for shell in ["bash", "zsh", "fish"] {
        let out = exec(
            {
                let mut c = helpdesk();
                c.args(["completions", shell]);
                c
            },
            b"",
        );
        assert_eq!(out.code, 0);
        assert!(
            out.stdout.contains("setup") && out.stdout.contains("parse"),
            "{shell}"
        );
    }
    let out = exec(
        {
            let mut c = helpdesk();
            c.arg("man");
            c
        },
        b"",
    );
    assert!(out.stdout.contains(".TH helpdesk 1"), "{}", out.stdout);

    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    let log = desk.path().join("helpdesk.log");
    let mut command = desk.command(&["-v", "--log-format", "json", "run"]);
    command.arg("--log-file").arg(&log);
    let out = exec(
        command,
        &crate::support::mail("alice@example.com", "quota", "more for me by 1 gb"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for text in [out.stderr, fs::read_to_string(&log).unwrap()] {
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(
            lines.iter().any(|l| l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("playbook succeeded"))),
            "{lines:?}"
        );
    }
}

#[test]
fn the_config_reference_in_docs_is_config_example_yaml() {
    let reference = fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let example = fs::read_to_string(repo().join("config.example.yaml")).unwrap();
    let block = reference
        .split_once("<!-- config-reference -->\n```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .map(|(block, _)| block)
        .expect("docs/configuration.md has no config reference block");
    assert_eq!(
        block, example,
        "docs/configuration.md's reference differs from config.example.yaml: copy the file into it"
    );
}

/// Issue 15: scripts/docs-check fails, naming the file and line, on a
/// shell block it neither runs nor finds marked, on a marker naming a test
/// that does not exist, and on a shown command that fails; it passes a
/// block it runs and one a real test runs.
#[test]
fn docs_check_fails_on_unmarked_and_broken_blocks() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("tests")).unwrap();
    fs::write(
        root.path().join("tests/t.rs"),
        "fn runs_it() { postalias(); }\n",
    )
    .unwrap();
    let doc = "# doc\n\n```\n$ helpdesk --version\n```\n\n\
        <!-- run by: tests/t.rs::gone -->\n```sh\npostalias /etc/aliases\n```\n\n\
        ```sh\nhelpdesk parse /nonexistent.eml\n```\n\n\
        <!-- run by: tests/t.rs::runs_it -->\n```sh\npostalias /etc/aliases\n```\n\n\
        ```console\n$ helpdesk --version\nhelpdesk\n```\n";
    fs::write(root.path().join("doc.md"), doc).unwrap();
    let mut check = Command::new(repo().join("scripts/docs-check"));
    check
        .arg("--root")
        .arg(root.path())
        .arg("doc.md")
        .env("HELPDESK_BIN", env!("CARGO_BIN_EXE_helpdesk"));
    let out = exec(check, b"");
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let failures: Vec<&str> = out.stdout.lines().collect();
    let starts: Vec<&str> = failures
        .iter()
        .map(|l| l.split_once(": ").map_or(*l, |(place, _)| place))
        .collect();
    assert_eq!(
        starts,
        ["doc.md:3", "doc.md:7", "doc.md:13"],
        "{}",
        out.stdout
    );
    assert!(
        failures[0].contains("neither runs nor finds marked"),
        "{}",
        failures[0]
    );
    assert!(failures[1].contains("has no test gone"), "{}", failures[1]);
    assert!(failures[2].contains("exited 66, not 0"), "{}", failures[2]);
    assert!(
        out.stderr.contains("5 shell blocks, 3 failure(s)"),
        "{}",
        out.stderr
    );
}

/// Issue 15: the SMTP login is a choice with a real "none" (the tmux walk
/// takes it with Enter); choosing one asks for the user and the password.
/// A port typed into the host is refused, and the domain is lower-cased.
#[test]
fn the_wizard_asks_for_an_smtp_login_and_refuses_a_port_in_the_host() {
    let user = crate::support::TestUser::new();
    let (_parent, dir, mut p) = wizard_for_a_new_folder();
    let ansible = ansible_playbook().display().to_string();
    let down2 = format!("{DOWN}{DOWN}");
    for (keys, line, next) in [
        ("", "Example.ORG", "own address"),
        ("", "", "Where does mail come in?"),
        ("", "", "How do replies leave?"),
        ("", "", "SMTP server"),
        ("", "localhost:2525", "write the host without its port"),
        ("", "localhost", "Encryption"),
        (down2.as_str(), "", "Port"),
        ("", "2525", "need a login?"),
        (DOWN, "", "SMTP user"),
        ("", "", "SMTP password"),
        (SECRET, "s3cret", "Senders"),
        ("", "", "scope: self"),
        ("", "", "Administrators"),
        ("", "", "authserv-id"),
        ("", "", "Require"),
        ("", "", "Authentication-Results?"),
        ("", "", "ansible-playbook"),
        ("", &ansible, "User the mail system runs helpdesk as"),
        ("", &user.0, "use sudo (become)?"),
        ("", "", "(checked with visudo)"),
        ("", "", "now?"),
        ("", "y", "Postfix"),
    ] {
        if keys == SECRET {
            await_secret_prompt(&p);
            answer(&mut p, "", line, next);
        } else {
            answer(&mut p, keys, line, next);
        }
    }
    p.exp_eof().unwrap();
    // The secret is the helpdesk user's own, the config its group's.
    let secret_owner =
        std::os::unix::fs::MetadataExt::uid(&fs::metadata(dir.join("smtp.secret")).unwrap());
    assert_ne!(secret_owner, 0);
    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    for line in [
        "helpdesk_address: \"helpdesk@example.org\"",
        "    host: \"localhost\"\n    port: 2525\n",
        "    security: none\n",
        "    username: \"helpdesk@example.org\"\n",
        "    password_file: \"smtp.secret\"\n",
        "senders: [\"*@example.org\"]",
        "authserv_id: [\"mx.example.org\"]",
    ] {
        assert!(config.contains(line), "no {line:?} in\n{config}");
    }
    let secret = dir.join("smtp.secret");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "s3cret\n");
    let mode = fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    checks_clean_and_dry_runs(&dir);
}

/// The options of a `--help` text that have no description.
fn undescribed(help: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut current: Option<(String, bool)> = None;
    let options = help.split_once("Options:\n").map_or("", |(_, o)| o);
    for line in options.lines().filter(|l| l.starts_with(' ')) {
        let trimmed = line.trim_start();
        // An option starts near the margin; its description's lines sit
        // further in (and may start with a flag's name too).
        if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
            if let Some((option, false)) = current.take() {
                missing.push(option);
            }
            let (option, text) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
            current = Some((option.to_owned(), !text.trim().is_empty()));
        } else if let Some((_, described)) = &mut current {
            *described = true;
        }
    }
    missing.extend(current.filter(|(_, d)| !d).map(|(option, _)| option));
    missing
}

/// Issue 15: `setup --help` lists setup's own options, each described,
/// not the global ones (which still work before `setup`).
#[test]
fn setup_help_shows_only_setup_options_each_described() {
    for flag in ["--help", "-h"] {
        let mut command = helpdesk();
        command.args(["setup", flag]);
        let out = exec(command, b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
        let help = out.stdout;
        for own in [
            "--dir",
            "--domain",
            "--smtp-host",
            "--smtp-user",
            "--ansible",
        ] {
            assert!(help.contains(own), "{flag}: no {own} in\n{help}");
        }
        for global in ["--config", "--verbose", "--log-format", "--log-file"] {
            assert!(!help.contains(global), "{flag}: {global} in\n{help}");
        }
        assert_eq!(undescribed(&help), Vec::<String>::new(), "{flag}:\n{help}");
    }
    // The other commands' help keeps the global options.
    let mut command = helpdesk();
    command.args(["check", "--help"]);
    assert!(exec(command, b"").stdout.contains("--config"));

    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("desk");
    let mut command = helpdesk();
    command
        .arg("--config")
        .arg(parent.path().join("elsewhere.yaml"))
        .args(["-v", "setup", "--non-interactive", "--transport", "folder"])
        .args(["--domain", "Example.ORG", "--admin", "Boss@Example.ORG"])
        .arg("--dir")
        .arg(&dir);
    let out = exec(command, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    assert!(
        config.contains("\"helpdesk@example.org\"") && config.contains("[\"Boss@example.org\"]"),
        "{config}"
    );
    assert!(
        out.stdout.contains(
            "Dry run of examples/storage.eml (from Boss@example.org): request type storage, authenticated: dmarc=pass header.from=example.org (mx.example.org), allowed: grant 2."
        ),
        "{}",
        out.stdout
    );
}

/// A folder whose config.yaml is `config` plus an open trust section.
fn desk_with(config: &str) -> Helpdesk {
    Helpdesk::from_defaults().config(&format!(
        "helpdesk_dir: .\n{config}authentication: {{require: none}}\naccess:\n  - {{requests: ['*'], senders: ['*']}}\n"
    ))
}

/// `check`'s errors (78), each as `file:line: error: message`.
fn check_errors(desk: &Helpdesk) -> Vec<String> {
    let (code, lines) = check(desk);
    assert_eq!(code, 78, "{lines:#?}");
    lines
        .into_iter()
        .filter(|l| l.contains(": error: "))
        .collect()
}

/// Issue 15: an ansible.command that cannot be started is one error at
/// its line, naming the command and the fix, instead of a warning per
/// playbook; and `host:port` in mail.smtp.host is an error naming
/// mail.smtp.port.
#[test]
fn check_fails_on_a_missing_ansible_playbook_and_on_localhost_2525() {
    let scratch = tempfile::tempdir().unwrap();
    let not_executable = scratch.path().join("ansible-playbook");
    fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&not_executable, fs::Permissions::from_mode(0o644)).unwrap();
    let missing = scratch.path().join("venv/bin/ansible-playbook");
    for (command, why) in [
        (missing.display().to_string(), "no such file"),
        (
            not_executable.display().to_string(),
            "not executable (mode 644)",
        ),
        ("no-such-ansible-playbook".to_owned(), "not found on PATH"),
    ] {
        let desk = desk_with(&format!("ansible:\n  timeout: 2m\n  command: {command}\n"));
        let (_, all) = check(&desk);
        let errors = check_errors(&desk);
        let config = desk.config_path().display().to_string();
        assert_eq!(errors.len(), 1, "{all:#?}");
        assert!(
            errors[0].starts_with(&format!(
                "{config}:4: error: ansible.command \"{command}\" cannot be run: {why}; "
            )) && errors[0]
                .contains("set ansible.command to the full path of its ansible-playbook"),
            "{errors:#?}"
        );
        assert!(
            !all.iter().any(|l| l.contains("not syntax-checked")),
            "{all:#?}"
        );
    }
    // Not set: ansible-playbook on PATH, not found there.
    let desk = desk_with("");
    let mut command = desk.command(&["check"]);
    command.env("PATH", "/nonexistent");
    let out = exec(command, b"");
    assert_eq!(out.code, 78, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{}: error: ansible.command is not set and \"ansible-playbook\" cannot be run: not found on PATH; ", desk.config_path().display())),
        "{}",
        out.stdout
    );

    let desk = desk_with(&format!(
        "ansible:\n  command: {}\nhelpdesk_address: helpdesk@example.org\nmail:\n  transport: smtp\n  smtp:\n    security: none\n    host: localhost:2525\n",
        ansible_playbook().display()
    ));
    let errors = check_errors(&desk);
    assert_eq!(
        errors,
        [format!(
            "{}:9: error: mail.smtp.host \"localhost:2525\" has a port in it, so it would be looked up as a host name and port 25 used: set mail.smtp.host: localhost and mail.smtp.port: 2525",
            desk.config_path().display()
        )]
    );
    // The same mistake given to setup is refused before anything is written.
    let parent = tempfile::tempdir().unwrap();
    let mut command = helpdesk();
    command.args(["setup", "--non-interactive", "--domain", "example.org"]);
    command.args(["--smtp-host", "localhost:2525", "--dir"]);
    command.arg(parent.path().join("desk"));
    let out = exec(command, b"");
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(out.stderr.contains("--smtp-port"), "{}", out.stderr);
    assert!(!parent.path().join("desk").exists());
}

/// A tmux server of its own (its socket in a temporary folder) running one
/// command in a 160x50 terminal; killed when dropped.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(shell_command: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tmux = Self {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let out = tmux
            .command(&["new-session", "-d", "-s", "wizard", "-x", "160", "-y", "50"])
            .arg(shell_command)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(need("tmux"));
        command.arg("-S").arg(&self.socket).args(args);
        command
    }

    /// Everything the pane shows and showed, wrapped lines joined.
    fn pane(&self) -> String {
        let out = self
            .command(&["capture-pane", "-p", "-J", "-S", "-", "-t", "wizard"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn press_enter(&self) {
        let status = self
            .command(&["send-keys", "-t", "wizard", "Enter"])
            .status();
        assert!(status.unwrap().success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]).status();
    }
}

/// Presses Enter at each prompt until `done` shows in the pane: a prompt
/// is there when the pane has changed since the last Enter and then
/// stays put. Returns the pane and how many prompts were answered; fails
/// with the pane when a prompt does not take Enter.
fn enter_until(tmux: &Tmux, done: &str) -> (String, usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut answered, mut enters) = (String::new(), 0);
    loop {
        let pane = tmux.pane();
        if pane.contains(done) {
            return (pane, enters);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {done:?} after {enters} Enters; the terminal shows:\n{pane}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        if pane != answered && pane.trim() != "" && tmux.pane() == pane {
            tmux.press_enter();
            answered = pane;
            enters += 1;
        }
    }
}

/// Issue 15, must show: `helpdesk setup` in a real terminal, Enter at
/// every prompt, gives a working folder: the wizard found ansible-playbook
/// on PATH, `check` passes, and the example mail it wrote dry-runs as an
/// allowed request of the configured (lower-cased) domain.
#[test]
fn the_wizard_walked_with_enter_alone_in_tmux_gives_a_working_folder() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("desk");
    // A parent the helpdesk user can pass through; a user of this test's
    // own as the default of the user prompt, removed afterwards.
    fs::set_permissions(parent.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let user = crate::support::TestUser::new();
    let ansible = ansible_playbook();
    let venv_bin = ansible.parent().unwrap();
    let tmux = Tmux::start(&format!(
        "env -u HELPDESK_CONFIG PATH='{}':\"$PATH\" '{}' setup --dir '{}' --domain Example.ORG --user {}; echo \"[setup exited with $?]\"; sleep 600",
        venv_bin.display(),
        env!("CARGO_BIN_EXE_helpdesk"),
        dir.display(),
        user.0
    ));
    let (pane, enters) = enter_until(&tmux, "[setup exited with ");
    assert!(pane.contains("[setup exited with 0]"), "{pane}");
    assert!(enters >= 10, "only {enters} prompts: {pane}");
    for prompt in [
        "mail domain",
        "need a login?",
        "Senders",
        "ansible-playbook",
        "User the mail system runs helpdesk as",
        "use sudo (become)?",
        "(checked with visudo)",
        "now?",
    ] {
        assert!(pane.contains(prompt), "no {prompt:?} prompt:\n{pane}");
    }
    assert!(
        pane.contains("Dry run of examples/storage.eml (from admin@example.org): request type storage, authenticated: dmarc=pass header.from=example.org (mx.example.org), allowed: grant 2."),
        "{pane}"
    );

    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    assert!(
        config.contains("helpdesk_address: \"helpdesk@example.org\""),
        "{config}"
    );
    assert!(
        config.contains("transport: smtp") && !config.contains("username:"),
        "{config}"
    );
    assert!(
        config.contains(&format!("command: \"{}\"", ansible.display())),
        "the wizard did not find ansible-playbook on PATH:\n{config}"
    );
    checks_clean_and_dry_runs(&dir);
    // Enter did not write a sudoers drop-in: it is printed.
    assert!(!Path::new("/etc/sudoers.d").join(&user.0).exists());
    assert!(
        pane.contains(&format!("{} ALL=(root) NOPASSWD: /bin/sh", user.0)),
        "{pane}"
    );
    let out = crate::support::check_as(&dir.join("config.yaml"), &user.0);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let mut explain = helpdesk();
    explain
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .args(["parse", "--explain"])
        .arg(dir.join("examples/storage.eml"));
    let out = exec(explain, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("\n              allowed: grant 2\n"),
        "{}",
        out.stdout
    );
}

/// `setup --non-interactive --user USER` (as root), with `args`, for a
/// new folder in a parent the user can pass through: the parent (removed
/// when dropped) and the folder.
fn desk_given_to(user: &str, args: &[&OsStr]) -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    fs::set_permissions(parent.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = parent.path().join("desk");
    let mut setup = setup_for("example.org");
    setup
        .arg("--dir")
        .arg(&dir)
        .args(["--user", user])
        .args(args);
    let out = exec(setup, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    (parent, dir)
}

/// Issue 15: `check --as NAME` runs as that user and fails (78) on what
/// would make every delivery defer: a config it cannot read, a state
/// folder it cannot write; the folder `setup --user` gave it passes.
#[test]
fn issue_15_check_as_the_helpdesk_user_finds_what_it_cannot_read_or_write() {
    let user = crate::support::TestUser::new();
    let ansible = ansible_playbook();
    let args = [
        OsStr::new("--no-become"),
        OsStr::new("--ansible"),
        ansible.as_os_str(),
    ];
    let (_parent, dir) = desk_given_to(&user.0, &args);
    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    assert!(
        config.contains("extra_args: [--extra-vars, helpdesk_become=false]"),
        "{config}"
    );
    let check_as = || crate::support::check_as(&dir.join("config.yaml"), &user.0);
    let out = check_as();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    let config_path = dir.join("config.yaml");
    fs::set_permissions(&config_path, fs::Permissions::from_mode(0o600)).unwrap();
    let out = check_as();
    assert_eq!(out.code, 78, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("error: {} cannot load it: ", user.0))
            && out.stdout.contains("Permission denied"),
        "{}",
        out.stdout
    );
    fs::set_permissions(&config_path, fs::Permissions::from_mode(0o640)).unwrap();

    std::os::unix::fs::chown(dir.join("state"), Some(0), Some(0)).unwrap();
    let out = check_as();
    assert_eq!(out.code, 78, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("error: {} cannot write state_dir ", user.0)),
        "{}",
        out.stdout
    );
}

/// Issue 15: re-running the wizard on a folder an earlier `setup --user`
/// gave to a user offers that user again: Enter at every prompt keeps the
/// folder that user's (and creates no `helpdesk` account).
#[test]
fn issue_15_the_wizard_rerun_with_enter_keeps_the_folders_user() {
    let user = crate::support::TestUser::new();
    let (_parent, dir) = desk_given_to(&user.0, &[]);
    let tmux = Tmux::start(&format!(
        "env -u HELPDESK_CONFIG '{}' setup --dir '{}'; echo \"[setup exited with $?]\"; sleep 600",
        env!("CARGO_BIN_EXE_helpdesk"),
        dir.display()
    ));
    let (pane, _) = enter_until(&tmux, "[setup exited with ");
    assert!(pane.contains("[setup exited with 0]"), "{pane}");
    let answered = format!("(created if missing) · {}", user.0);
    assert!(pane.contains(&answered), "{pane}");
    assert!(!pane.contains("created the system user"), "{pane}");
    assert!(
        pane.contains(&format!("gave {} to {}", dir.display(), user.0)),
        "{pane}"
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&fs::metadata(dir.join("state")).unwrap());
    assert_ne!(owner, 0);
}

/// `setup --non-interactive --intake ...` for a new folder with `args`
/// (and the real ansible-playbook): the parent, the folder and the output.
fn setup_with_intake(args: &[&OsStr]) -> (tempfile::TempDir, PathBuf, crate::support::Output) {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("desk");
    let mut setup = setup_for("example.org");
    setup
        .arg("--ansible")
        .arg(ansible_playbook())
        .args(args)
        .arg("--dir")
        .arg(&dir);
    let out = exec(setup, b"");
    (parent, dir, out)
}

/// What setup prints for a mailbox or Maildir intake: how to run fetch
/// (the service with this install's paths, or cron), not the MTA's pipe.
fn says_how_to_run_fetch(out: &str, dir: &Path) {
    let fetch = format!(
        "{} --config {} fetch",
        env!("CARGO_BIN_EXE_helpdesk"),
        dir.join("config.yaml").display()
    );
    for text in [
        "contrib/helpdesk-fetch.service",
        &format!("    ExecStart={fetch}\n    User="),
        &format!("* * * * * {fetch} --once\n"),
        "Dry run of examples/storage.eml (from admin@example.org): request type storage",
    ] {
        assert!(out.contains(text), "no {text:?} in\n{out}");
    }
    for pipe in ["master.cf", "procmailrc", "fdm.conf"] {
        assert!(!out.contains(pipe), "{pipe} in\n{out}");
    }
}

/// Issue 17: `setup --intake imap` from flags writes the source as given
/// (its password in the given file), which `check` accepts; the output
/// says how to run fetch and how to try the login.
#[test]
fn issue_17_setup_intake_imap_from_flags_checks_clean() {
    let secrets = tempfile::tempdir().unwrap();
    let password = secrets.path().join("imap.password");
    fs::write(&password, "pw\n").unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    let (_parent, dir, out) = setup_with_intake(&[
        OsStr::new("--intake"),
        OsStr::new("imap"),
        OsStr::new("--imap-url"),
        OsStr::new("imaps://127.0.0.1:9993/INBOX"),
        OsStr::new("--imap-user"),
        OsStr::new("u"),
        OsStr::new("--imap-password-file"),
        password.as_os_str(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    let source = format!(
        "sources:\n  - name: inbox\n    imap:\n      url: \"imaps://127.0.0.1:9993/INBOX\"\n      username: \"u\"\n      # mode 600; a file others can read is refused\n      password_file: \"{}\"\n      # a private CA's certificate (PEM); the public web roots without it\n      # ca_file: /etc/helpdesk/imap-ca.pem\n    # done: Helpdesk/Done\n    # failed: Helpdesk/Failed\n",
        password.display()
    );
    assert!(config.contains(&source), "no\n{source}in\n{config}");
    assert!(
        config
            .contains("writes Authentication-Results below its Received header (position: below)"),
        "{config}"
    );
    says_how_to_run_fetch(&out.stdout, &dir);
    assert!(
        out.stdout.contains(&format!(
            "Try the login to imaps://127.0.0.1:9993/INBOX first: {} --config {} check --online",
            env!("CARGO_BIN_EXE_helpdesk"),
            dir.join("config.yaml").display()
        )),
        "{}",
        out.stdout
    );
    assert!(!dir.join("imap.secret").exists());
    checks_clean_and_dry_runs(&dir);
}

/// Issue 17: `setup --intake maildir --maildir DIR` writes that Maildir as
/// the source, which `check` accepts.
#[test]
fn issue_17_setup_intake_maildir_from_flags_checks_clean() {
    let mail = tempfile::tempdir().unwrap();
    let maildir = mail.path().join("Maildir");
    for part in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(part)).unwrap();
    }
    let (_parent, dir, out) = setup_with_intake(&[
        OsStr::new("--intake"),
        OsStr::new("maildir"),
        OsStr::new("--maildir"),
        maildir.as_os_str(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    let source = format!(
        "sources:\n  - name: mailbox\n    maildir: \"{}\"\n",
        maildir.display()
    );
    assert!(config.contains(&source), "no\n{source}in\n{config}");
    assert!(!config.contains("imap"), "{config}");
    says_how_to_run_fetch(&out.stdout, &dir);
    assert!(
        out.stdout.contains("must be able to write the Maildir"),
        "{}",
        out.stdout
    );
    checks_clean_and_dry_runs(&dir);
}

/// Issue 17: a URL `sources:` would refuse is refused by setup, before
/// anything is written, in one line naming --imap-url; so is an IMAP
/// answer without --intake imap.
#[test]
fn issue_17_setup_refuses_a_bad_imap_url_naming_the_flag() {
    for (args, says) in [
        (
            [
                "--intake",
                "imap",
                "--imap-url",
                "https://mail.example.org/INBOX",
            ]
            .as_slice(),
            "--imap-url \"https://mail.example.org/INBOX\": not an imap:// or imaps:// URL: write e.g. imaps://mail.example.com/INBOX",
        ),
        (
            [
                "--intake",
                "imap",
                "--imap-url",
                "imaps://mail.example.org:99999/",
            ]
            .as_slice(),
            "--imap-url \"imaps://mail.example.org:99999/\": the port is not a number",
        ),
        (
            ["--imap-url", "imaps://mail.example.org/INBOX"].as_slice(),
            "--imap-url is for --intake imap",
        ),
        (
            ["--intake", "maildir"].as_slice(),
            "--intake maildir needs --maildir",
        ),
    ] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let (parent, dir, out) = setup_with_intake(&args);
        assert_eq!(out.code, 64, "{args:?}: {}", out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", out.stderr);
        assert!(lines[0].contains(says), "{args:?}: {}", out.stderr);
        assert!(!dir.exists(), "{args:?}");
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}

/// Issue 17: the wizard walked choosing a mailbox: a URL `sources:` would
/// refuse is refused at its prompt; the password typed is kept in
/// imap.secret (0600, the helpdesk user's), never in config.yaml nor on
/// the screen; the folder checks clean and dry-runs its example mail.
#[test]
fn issue_17_the_wizard_choosing_imap_keeps_the_password_in_imap_secret() {
    const PASSWORD: &str = "Typed-pw-4711";
    let user = crate::support::TestUser::new();
    let (_parent, dir, mut p) = wizard_for_a_new_folder();
    let ansible = ansible_playbook().display().to_string();
    let down2 = format!("{DOWN}{DOWN}");
    let mut seen = String::new();
    for (keys, line, next) in [
        ("", "example.org", "own address"),
        ("", "", "Where does mail come in?"),
        (DOWN, "", "Mailbox URL"),
        (
            "",
            "https://mail.example.org/INBOX",
            "not an imap:// or imaps:// URL",
        ),
        ("", "imaps://127.0.0.1:9993/INBOX", "IMAP user"),
        ("", "", "IMAP password"),
        (SECRET, PASSWORD, "How do replies leave?"),
        (down2.as_str(), "", "Senders"),
        ("", "", "scope: self"),
        ("", "", "Administrators"),
        ("", "", "authserv-id"),
        ("", "", "Require"),
        ("", "", "Authentication-Results?"),
        ("", "", "ansible-playbook"),
        ("", &ansible, "User the mail system runs helpdesk as"),
        ("", &user.0, "use sudo (become)?"),
        ("", "n", "now?"),
        ("", "y", "helpdesk reads the mailbox itself"),
    ] {
        if keys == SECRET {
            await_secret_prompt(&p);
        } else if !keys.is_empty() {
            p.send(keys).unwrap();
        }
        p.send_line(line).unwrap();
        seen.push_str(&p.exp_string(next).unwrap());
        seen.push_str(next);
    }
    seen.push_str(&p.exp_eof().unwrap());
    assert!(seen.contains("check --online"), "{seen}");
    assert!(!seen.contains(PASSWORD), "the password was shown:\n{seen}");
    let secret = dir.join("imap.secret");
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        format!("{PASSWORD}\n")
    );
    let meta = fs::metadata(&secret).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_ne!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    let config = fs::read_to_string(dir.join("config.yaml")).unwrap();
    assert!(!config.contains(PASSWORD), "{config}");
    for line in [
        "      url: \"imaps://127.0.0.1:9993/INBOX\"\n",
        "      username: \"helpdesk@example.org\"\n",
        "      password_file: \"imap.secret\"\n",
    ] {
        assert!(config.contains(line), "no {line:?} in\n{config}");
    }
    checks_clean_and_dry_runs(&dir);
}

/// Issue 17, end to end: a folder set up with `--intake imap` for a real
/// Dovecot (its test CA given as --imap-ca-file) logs in with `check
/// --online`, and `fetch --once` handles the mail waiting there and moves
/// it to Helpdesk/Done. The mail is unauthenticated, so it is refused
/// (nothing runs) but handled, journaled and moved all the same.
#[test]
fn issue_17_a_folder_set_up_for_a_real_mailbox_fetches_from_it() {
    let dovecot = crate::support::dovecot::Dovecot::start();
    dovecot.append(
        "INBOX",
        &crate::support::mail("admin@example.org", "storage", "please add 5 gb"),
    );
    let secrets = tempfile::tempdir().unwrap();
    let password = secrets.path().join("imap.password");
    fs::write(&password, format!("{}\n", dovecot.password())).unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    let url = dovecot.imaps_url("INBOX");
    let (_parent, dir, out) = setup_with_intake(&[
        OsStr::new("--intake"),
        OsStr::new("imap"),
        OsStr::new("--imap-url"),
        OsStr::new(&url),
        OsStr::new("--imap-user"),
        OsStr::new(dovecot.user()),
        OsStr::new("--imap-password-file"),
        password.as_os_str(),
        OsStr::new("--imap-ca-file"),
        dovecot.ca_file().as_os_str(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = dir.join("config.yaml");
    let text = fs::read_to_string(&config).unwrap();
    let ca = format!("      ca_file: \"{}\"\n", dovecot.ca_file().display());
    assert!(text.contains(&ca), "no {ca:?} in\n{text}");
    let run = |args: &[&str]| {
        let mut command = helpdesk();
        command.arg("--config").arg(&config).args(args);
        exec(command, b"")
    };
    let online = run(&["check", "--online"]);
    assert_eq!(online.code, 0, "{}{}", online.stdout, online.stderr);
    let said = format!("{}{}", online.stdout, online.stderr);
    assert!(
        said.contains("sources inbox: logged in to") && said.contains("1 message(s)"),
        "{said}"
    );
    let fetched = run(&["fetch", "--once"]);
    assert_eq!(fetched.code, 0, "{}\n{}", fetched.stderr, dovecot.log());
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Helpdesk.Done"), 1, "{}", dovecot.log());
    let log = run(&["log", "--format", "json"]);
    let rows: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{}", log.stdout);
    assert_eq!(rows[0]["request_type"], "storage", "{:?}", rows[0]);
    assert!(
        rows[0]["intake"].as_str().unwrap().starts_with("inbox/"),
        "{:?}",
        rows[0]
    );
}
