//! Issue 5: real mail software from Debian (installed by scripts/test)
//! delivering to `helpdesk run`: Postfix through an alias pipe, procmail
//! and fdm, each with the snippet docs/operators-guide.md shows.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, need, outcomes, repo, swaks, unique_id, wait_for, wait_or};

const NOBODY: u32 = 65534;
/// Where the MTA snippets the tests run are written for operators.
const GUIDE: &str = "docs/operators-guide.md";

/// The operator's guide's snippet under `<!-- snippet: NAME -->`, with
/// the binary and config paths of this test.
fn snippet(name: &str, config: &Path) -> String {
    let guide = fs::read_to_string(repo().join(GUIDE)).unwrap();
    let marker = format!("<!-- snippet: {name} -->");
    let after = guide
        .split_once(&marker)
        .unwrap_or_else(|| panic!("{GUIDE} has no {marker}"))
        .1;
    let block = after
        .split_once("```\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    block
        .replace("/usr/local/bin/helpdesk", env!("CARGO_BIN_EXE_helpdesk"))
        .replace("/etc/helpdesk/config.yaml", &config.display().to_string())
}

/// The echo playbook's output file, passed through config.yaml: MTAs run
/// commands with a clean environment. Also a HOME for Ansible.
fn with_test_environment(desk: Helpdesk) -> Helpdesk {
    let home = desk.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let config = desk.config_text().replace(
        "  timeout: 2m\n",
        &format!(
            "  timeout: 2m\n  environment: {{HOME: {home}, ANSIBLE_LOCAL_TEMP: {home}/.ansible/tmp, ANSIBLE_REMOTE_TMP: {home}/.ansible/tmp, HELPDESK_TEST_OUT: {}}}\n",
            desk.path().join("received.json").display(),
            home = home.display()
        ),
    );
    desk.config(&config)
}

/// The helpdesk folder handed to `nobody`, the user Postfix's alias pipe
/// runs commands as (and the user the fdm test runs as).
fn desk_for_nobody(desk: Helpdesk) -> Helpdesk {
    let desk = with_test_environment(desk);
    chown_tree(desk.path(), NOBODY);
    fs::set_permissions(desk.path(), fs::Permissions::from_mode(0o755)).unwrap();
    desk
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// `helpdesk log` as nobody (a root process must not create the journal's
/// lock files under nobody's feet).
fn journal(desk: &Helpdesk) -> Vec<Value> {
    let out = Command::new(need("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_helpdesk"))
        .arg("--config")
        .arg(desk.config_path())
        .args(["log", "--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    fn start(relay: u16, alias_command: &str) -> Self {
        need("postfix");
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let port = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap().port()
        };
        let out = Command::new(repo().join("tests/mta/postfix-instance"))
            .arg(dir.path())
            .arg(port.to_string())
            .arg(relay.to_string())
            .arg(alias_command)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let postfix = Self { dir, port };
        wait_for("postfix to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        postfix
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Sends a message with swaks, a real SMTP client.
    fn send(&self, from: &str, subject: &str, message_id: &str, body: &str) {
        swaks(&[
            "--server",
            &format!("127.0.0.1:{}", self.port),
            "--to",
            "helpdesk@helpdesk.test",
            "--from",
            from,
            "--header",
            &format!("Subject: {subject}"),
            "--header",
            &format!("Message-Id: <{message_id}>"),
            "--body",
            body,
        ]);
    }

    /// Sends a request from alice and waits until `sink` has a reply.
    fn ask(&self, sink: &SmtpServer, subject: &str, message_id: &str, body: &str) {
        self.send("alice@example.com", subject, message_id, body);
        wait_or(
            "the reply",
            Duration::from_secs(120),
            &mut || !sink.received().is_empty(),
            &|| self.log(),
        );
    }

    fn flush(&self) {
        let status = Command::new(need("postqueue"))
            .arg("-c")
            .arg(self.conf())
            .arg("-f")
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .output();
    }
}

/// A helpdesk folder owned by nobody, piped to from a Postfix alias (the
/// guide's snippet) and replying through that Postfix to `sink`.
fn postfix_desk(sink: &SmtpServer) -> (Helpdesk, Postfix) {
    let desk = Helpdesk::from_defaults().with_echo_playbooks();
    // Placeholder port; the real one is known once Postfix runs.
    let config = format!(
        "{}helpdesk_address: helpdesk@helpdesk.test\nmail:\n  smtp: {{host: 127.0.0.1, port: PORT, security: none}}\n",
        desk.config_text()
    );
    let desk = desk.config(&config);
    let alias = snippet("postfix-alias", &desk.config_path());
    let command = alias
        .lines()
        .find_map(|l| l.strip_prefix("helpdesk: \"|"))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let postfix = Postfix::start(sink.port, &command);
    let config = desk
        .config_text()
        .replace("port: PORT", &format!("port: {}", postfix.port));
    let desk = desk.config(&config);
    (desk_for_nobody(desk), postfix)
}

/// 1. Postfix → helpdesk → ansible-playbook → reply (through Postfix to the sink).
fn postfix_delivers_and_the_reply_comes_back(
    desk: &Helpdesk,
    postfix: &Postfix,
    sink: &SmtpServer,
) {
    let first = unique_id();
    postfix.ask(sink, "quota", &first, "Please give me more space, by 2 gb.");
    let reply = sink.only();
    assert_eq!(reply.header("Subject").as_deref(), Some("Re: quota"));
    assert_eq!(
        reply.header("In-Reply-To").as_deref(),
        Some(format!("<{first}>").as_str())
    );
    assert!(
        reply
            .body()
            .contains("Your storage request is done (for alice)."),
        "{}",
        reply.body()
    );
    // The reply leaves before helpdesk exits and Postfix logs the delivery.
    wait_or(
        "Postfix to log the local delivery",
        Duration::from_secs(30),
        &mut || postfix.log().contains("relay=local"),
        &|| postfix.log(),
    );
    assert_eq!(desk.received().unwrap()["targets"], "alice");
}

/// 2. An unwritable state folder: helpdesk exits 75, Postfix defers.
fn postfix_defers_while_the_state_folder_is_unwritable(
    state: &Path,
    postfix: &Postfix,
    sink: &SmtpServer,
) {
    fs::set_permissions(state, fs::Permissions::from_mode(0o000)).unwrap();
    let second = unique_id();
    postfix.send(
        "bob@example.com",
        "quota",
        &second,
        "More space for me by 1 gb.",
    );
    wait_for("the deferral", Duration::from_secs(60), || {
        postfix.log().contains("status=deferred")
    });
    let log = postfix.log();
    let deferral = log.lines().find(|l| l.contains("status=deferred")).unwrap();
    assert!(
        deferral.contains("helpdesk@helpdesk.test") && deferral.contains("relay=local"),
        "{deferral}"
    );
    assert!(!log.contains("status=bounced"), "{log}");
    assert_eq!(
        sink.received().len(),
        1,
        "no reply for the deferred message yet"
    );
}

/// 3. Fixed: the queued message is delivered, once.
fn postfix_delivers_the_deferred_message_once(
    desk: &Helpdesk,
    postfix: &Postfix,
    sink: &SmtpServer,
) {
    fs::set_permissions(desk.path().join("state"), fs::Permissions::from_mode(0o700)).unwrap();
    postfix.flush();
    wait_for("the second reply", Duration::from_secs(90), || {
        sink.received().len() == 2
    });
    // The reply goes out before the outcome is journaled: wait for that,
    // instead of sleeping and hoping.
    wait_for("both rows journaled", Duration::from_secs(30), || {
        let rows = journal(desk);
        rows.len() >= 2 && outcomes(&rows).iter().all(|o| o != "-")
    });
    let rows = journal(desk);
    assert_eq!(outcomes(&rows), ["done", "done"], "{rows:?}");
    assert_eq!(desk.run_logs().len(), 2, "nothing ran twice");
    assert_eq!(sink.received().len(), 2);
    assert_eq!(desk.received().unwrap()["targets"], "bob");
}

#[test]
fn postfix_pipes_to_helpdesk_which_runs_the_playbook_and_replies_through_postfix() {
    let sink = SmtpServer::plain();
    let (desk, postfix) = postfix_desk(&sink);
    postfix_delivers_and_the_reply_comes_back(&desk, &postfix, &sink);
    postfix_defers_while_the_state_folder_is_unwritable(
        &desk.path().join("state"),
        &postfix,
        &sink,
    );
    postfix_delivers_the_deferred_message_once(&desk, &postfix, &sink);
}

#[test]
fn procmail_pipes_to_helpdesk_with_the_readme_recipe() {
    let procmail = need("procmail");
    let desk = with_test_environment(Helpdesk::from_defaults().with_echo_playbooks());
    let rc = desk.path().join("procmailrc");
    fs::write(
        &rc,
        format!(
            "MAILDIR={dir}\nDEFAULT={dir}/kept/\nLOGFILE={dir}/procmail.log\nVERBOSE=yes\n{}",
            snippet("procmail", &desk.config_path()),
            dir = desk.path().display()
        ),
    )
    .unwrap();
    let message = crate::support::mail("alice@example.com", "quota", "more for me by 1 gb");
    let out = crate::support::exec(
        {
            let mut c = Command::new(procmail);
            c.arg("-m").arg(&rc);
            c
        },
        &message,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let log = fs::read_to_string(desk.path().join("procmail.log")).unwrap_or_default();
    assert_eq!(
        desk.received()
            .unwrap_or_else(|| panic!("the playbook did not run: {}{log}", out.stderr))["targets"],
        "alice"
    );
    assert!(
        !desk.path().join("kept").exists(),
        "procmail fell through to the default mailbox"
    );
}

#[test]
fn fdm_pipes_a_maildir_to_helpdesk_with_the_readme_config() {
    let fdm = need("fdm");
    let desk = desk_for_nobody(Helpdesk::from_defaults().with_echo_playbooks());
    let maildir = desk.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    fs::write(
        maildir.join("new/1.eml"),
        crate::support::mail("carol@example.com", "quota", "more for me by 3 gb"),
    )
    .unwrap();
    chown_tree(&maildir, NOBODY);
    let conf = desk.path().join("fdm.conf");
    let snippet = snippet("fdm", &desk.config_path())
        .replace("/var/mail/helpdesk", &maildir.display().to_string());
    // nobody has no home for fdm's lock file.
    let lock = format!(
        "set lock-file \"{}\"\n",
        desk.path().join("fdm.lock").display()
    );
    fs::write(&conf, lock + &snippet).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    // fdm runs as the mailbox's owner, as it would from that user's crontab.
    chown_tree(&conf, NOBODY);
    let out = Command::new(need("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(fdm)
        .arg("-f")
        .arg(&conf)
        .arg("fetch")
        .env("HOME", desk.path().join("home"))
        .current_dir(desk.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fdm: {said}");
    let received = desk.received().unwrap_or_else(|| {
        let logs: Vec<String> = desk
            .run_logs()
            .iter()
            .map(|l| fs::read_to_string(l).unwrap_or_default())
            .collect();
        panic!("no playbook run: {said} {logs:?}")
    });
    assert_eq!(received["targets"], "carol");
    assert_eq!(
        fs::read_dir(maildir.join("new")).unwrap().count(),
        0,
        "fdm removed the delivered message"
    );
    let rows = journal(&desk);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "done");
}

/// Mail for helpdesk.test goes through a master.cf `pipe` service running
/// `helpdesk run` as nobody, instead of the alias.
fn route_through_pipe(postfix: &Postfix, desk: &Helpdesk) {
    let conf = postfix.conf();
    let postconf = |args: &[&str]| {
        let out = Command::new(need("postconf"))
            .arg("-c")
            .arg(&conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    postconf(&[
        "-M",
        &format!(
            "helpdesk/unix=helpdesk unix - n n - - pipe user=nobody argv={} --config {} run",
            env!("CARGO_BIN_EXE_helpdesk"),
            desk.config_path().display()
        ),
    ]);
    let transport = conf.join("transport");
    let routes = fs::read_to_string(&transport).unwrap();
    fs::write(&transport, format!("helpdesk.test helpdesk:\n{routes}")).unwrap();
    for (tool, args) in [
        (
            "postmap",
            vec!["-c", conf.to_str().unwrap(), transport.to_str().unwrap()],
        ),
        ("postfix", vec!["-c", conf.to_str().unwrap(), "reload"]),
    ] {
        assert!(
            Command::new(need(tool))
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    }
}

/// Issue 15: through Postfix's pipe(8) (master.cf), which logs the start
/// of the command's output in its `status=sent (delivered via ...
/// service (...))` and cuts it at about 100 characters: the cut line
/// still says the outcome and the row, for a done and a failed request.
#[test]
fn issue_15_the_postfix_pipe_log_line_starts_with_the_outcome_and_row() {
    let sink = SmtpServer::plain();
    let (desk, postfix) = postfix_desk(&sink);
    let failing = "- hosts: helpdesk_targets\n  gather_facts: false\n  tasks:\n    - name: Fail\n      ansible.builtin.fail: {msg: no such account}\n";
    let desk = desk.file("playbooks/query_account.yaml", failing);
    chown_tree(desk.path(), NOBODY);
    route_through_pipe(&postfix, &desk);
    let cases = [
        (
            "quota",
            "Please give me more space, by 2 gb.",
            "done row 1: storage: playbook succeeded",
        ),
        (
            "query account",
            "username: bob",
            "failed row 2: query_account: playbook failed with exit",
        ),
    ];
    for (n, (subject, body, start)) in cases.into_iter().enumerate() {
        postfix.send("alice@example.com", subject, &unique_id(), body);
        let sent = |log: &str| {
            log.lines()
                .filter(|l| l.contains("relay=helpdesk,") && l.contains("status=sent"))
                .count()
        };
        wait_or(
            "the delivery through the pipe",
            Duration::from_secs(90),
            &mut || sent(&postfix.log()) > n,
            &|| postfix.log(),
        );
        let log = postfix.log();
        let line = log
            .lines()
            .filter(|l| l.contains("relay=helpdesk,") && l.contains("status=sent"))
            .nth(n)
            .unwrap();
        assert!(
            line.contains(&format!("(delivered via helpdesk service ({start}")),
            "{line}"
        );
    }
}

/// The blocks of `setup`'s "Postfix, running helpdesk as USER" snippet:
/// each `  FILE (...):` heading with its lines (indented four), and the
/// `then:` command.
fn printed_postfix_route(printed: &str) -> (Vec<(String, Vec<String>)>, String) {
    let section = printed
        .split_once("Postfix, running helpdesk as ")
        .unwrap_or_else(|| panic!("no master.cf route printed:\n{printed}"))
        .1
        .split_once("\n\n")
        .unwrap()
        .0;
    let (mut blocks, mut then) = (Vec::<(String, Vec<String>)>::new(), String::new());
    for line in section.lines().skip(1) {
        if let Some(command) = line.strip_prefix("  then: ") {
            then = command.to_owned();
        } else if let Some(content) = line.strip_prefix("    ") {
            blocks.last_mut().unwrap().1.push(content.to_owned());
        } else {
            let file = line.trim().split([' ', ':']).next().unwrap().to_owned();
            blocks.push((file, Vec::new()));
        }
    }
    (blocks, then)
}

/// Applies the printed route to the test Postfix as an operator would:
/// /etc/postfix is its config folder; main.cf's maps that are set already
/// get the new map added to their list, as the snippet says.
fn apply_postfix_route(postfix: &Postfix, printed: &str) {
    let conf = postfix.conf();
    let here = |text: &str| text.replace("/etc/postfix", &conf.display().to_string());
    let (blocks, then) = printed_postfix_route(printed);
    assert_eq!(blocks.len(), 4, "{blocks:?}");
    for (file, lines) in blocks {
        let path = PathBuf::from(here(&file));
        if file.ends_with("main.cf") {
            for setting in lines {
                let (key, value) = setting.split_once(" = ").unwrap();
                let current = Command::new(need("postconf"))
                    .arg("-c")
                    .arg(&conf)
                    .args(["-hn", key])
                    .output()
                    .unwrap();
                let current = String::from_utf8_lossy(&current.stdout).trim().to_owned();
                let value = if current.is_empty() {
                    here(value)
                } else {
                    format!("{}, {current}", here(value))
                };
                let status = Command::new(need("postconf"))
                    .arg("-c")
                    .arg(&conf)
                    .arg("-e")
                    .arg(format!("{key} = {value}"))
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        } else {
            let mut text = fs::read_to_string(&path).unwrap_or_default();
            for line in lines {
                text.push_str(&here(&line));
                text.push('\n');
            }
            fs::write(&path, text).unwrap();
        }
    }
    let then = here(&then)
        .replace("postmap ", &format!("postmap -c {} ", conf.display()))
        .replace(
            "postfix reload",
            &format!("postfix -c {} reload", conf.display()),
        );
    let out = Command::new("sh").arg("-c").arg(&then).output().unwrap();
    assert!(
        out.status.success(),
        "{then}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `setup --user USER --write-sudoers` as root, non-interactive, for a
/// folder `dir` replying through `postfix`; what it printed.
fn setup_as_root(user: &str, dir: &Path, postfix: &Postfix) -> String {
    let mut setup = crate::support::helpdesk();
    setup
        .args(["setup", "--non-interactive", "--domain", "helpdesk.test"])
        .arg("--dir")
        .arg(dir)
        .args(["--user", user, "--write-sudoers"])
        .args(["--sender", "*@example.com", "--admin", "alice@example.com"])
        .args(["--require", "none", "--smtp-host", "127.0.0.1"])
        .args([
            "--smtp-port",
            &postfix.port.to_string(),
            "--smtp-security",
            "none",
        ])
        .arg("--ansible")
        .arg(crate::support::ansible_playbook());
    let out = crate::support::exec(setup, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("created the system user {user}")),
        "{}",
        out.stdout
    );
    let sudoers = Path::new("/etc/sudoers.d").join(user);
    let mode = fs::metadata(&sudoers).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o440);
    out.stdout
}

/// Issue 15 (must show): `setup --user NAME` as root creates the account
/// and gives it the folder; the Postfix route it prints (a master.cf pipe
/// with `user=NAME`), applied as printed, delivers to helpdesk running as
/// that user: the shipped query_account playbook runs, becoming root with
/// the sudoers drop-in `--write-sudoers` wrote, and the reply, with the
/// account's details, comes back through Postfix.
#[test]
fn issue_15_setup_user_then_its_printed_postfix_route_delivers_as_that_user() {
    let user = crate::support::TestUser::new();
    let sink = SmtpServer::plain();
    // The alias would run as nobody, who cannot read the folder: only the
    // printed route can deliver.
    let postfix = Postfix::start(sink.port, "/bin/false");
    let parent = tempfile::tempdir().unwrap();
    fs::set_permissions(parent.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = parent.path().join("desk");
    let printed = setup_as_root(&user.0, &dir, &postfix);
    let config = dir.join("config.yaml");
    let checked = crate::support::check_as(&config, &user.0);
    assert_eq!(checked.code, 0, "{}{}", checked.stdout, checked.stderr);

    apply_postfix_route(&postfix, &printed);
    postfix.ask(&sink, "query account", &unique_id(), "username: root");
    let log = postfix.log();
    assert!(
        log.contains("relay=helpdesk,") && log.contains("status=sent"),
        "{log}"
    );
    let reply = sink.only().body();
    for line in [
        "Your query_account request is done (for root).",
        "account: root on localhost",
        "uid: 0",
        "home: /root",
    ] {
        assert!(reply.contains(line), "{line:?} not in {reply}");
    }
    // The password state needs root: the become through sudo worked.
    let password = reply.lines().find_map(|l| l.strip_prefix("password: "));
    assert!(password.is_some_and(|p| p != "unknown"), "{reply}");
    // After a real run (Ansible's files under HOME, the journal, the run
    // log), the folder still checks clean for that user.
    let checked = crate::support::check_as(&config, &user.0);
    assert_eq!(checked.code, 0, "{}{}", checked.stdout, checked.stderr);
    let clean = checked.stderr.contains("0 error(s), 0 warning(s)");
    assert!(clean, "{}{}", checked.stdout, checked.stderr);
    let uid = |path: &Path| std::os::unix::fs::MetadataExt::uid(&fs::metadata(path).unwrap());
    let state = dir.join("state");
    let (owner, journal) = (uid(&state), uid(&state.join("journal.sqlite")));
    assert!(
        owner != 0 && journal == owner,
        "state {owner}, journal {journal}"
    );
}
