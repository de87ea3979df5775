//! A small fluent helper so each test reads as "given this helpdesk folder
//! and this mail, expect this".

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub(crate) mod dovecot;
pub(crate) mod smtp;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built binary, with no helpdesk settings leaking in from the caller.
pub(crate) fn helpdesk() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_helpdesk"));
    command
        .env_remove("HELPDESK_CONFIG")
        .env_remove("HELPDESK_LOG");
    command
}

/// `helpdesk setup --non-interactive` for `domain`, replies written to a
/// folder; the caller adds the rest.
pub(crate) fn setup_for(domain: &str) -> Command {
    let mut command = helpdesk();
    command.args([
        "setup",
        "--non-interactive",
        "--domain",
        domain,
        "--transport",
        "folder",
    ]);
    command
}

/// The real ansible-playbook. Never skipped: when it is missing the test
/// fails and says how to get it.
pub(crate) fn ansible_playbook() -> PathBuf {
    let path = std::env::var_os("HELPDESK_TEST_ANSIBLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/ansible-playbook"));
    assert!(
        path.is_file(),
        "ansible-playbook not found at {}: run scripts/test, which installs ansible-core into .venv/",
        path.display()
    );
    path
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = repo().join("tests/fixtures").join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Message-ID no other test mail has: the helpdesk runs each message
/// once, so every mail a test means as new needs its own.
pub(crate) fn unique_id() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("test-{}-{n}@example.com", std::process::id())
}

/// A plain-text mail with a fresh Message-ID.
pub(crate) fn mail(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        unique_id(),
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

/// A fixture with its Message-ID replaced by a fresh one, to send it again
/// as a new message.
pub(crate) fn fresh(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.to_ascii_lowercase().starts_with("message-id:") {
            out.push_str(&format!("Message-ID: <{}>\r\n", unique_id()));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// The outcomes of journal rows (`-` for none yet), sorted.
pub(crate) fn outcomes(rows: &[Value]) -> Vec<String> {
    let mut outcomes: Vec<String> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or("-").to_owned())
        .collect();
    outcomes.sort();
    outcomes
}

#[derive(Debug)]
pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Fails unless the exit status is `code` and stderr says `text`.
    pub(crate) fn assert_said(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "{}", self.stderr);
        assert!(self.stderr.contains(text), "{}", self.stderr);
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the binary with `args`, feeding `stdin`.
pub(crate) fn exec(mut command: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start helpdesk: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // The program may stop reading early (it has not here, but a broken
        // pipe must not fail the test).
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `helpdesk parse --format json` on the built-in defaults.
pub(crate) fn parse_builtin(mail: &[u8]) -> Value {
    let mut command = helpdesk();
    command.args(["parse", "--format", "json"]);
    let out = exec(command, mail);
    assert_eq!(out.code, 0, "parse failed: {}", out.stderr);
    out.json()
}

/// The variables the echo playbook reports back.
pub(crate) const ECHOED: &[&str] = &[
    "request_type",
    "from",
    "subject",
    "message_id",
    "targets",
    "selftargets",
    "verbs_positive",
    "verbs_negative",
    "queries",
    "purge",
    "modifiers",
    "amount",
    "unit",
    "password",
    "first_name",
    "last_name",
    "name",
    "group",
    "extra_groups",
    "shell",
];

/// A playbook that writes the variables it received, as JSON, to the file
/// named by HELPDESK_TEST_OUT.
pub(crate) fn echo_playbook() -> String {
    echo_playbook_of(ECHOED)
}

/// The echo playbook for the variables `wanted`.
pub(crate) fn echo_playbook_of(wanted: &[&str]) -> String {
    format!(
        r#"- name: Echo the variables the helpdesk passed
  hosts: all
  gather_facts: false
  vars:
    wanted: [{}]
  tasks:
    - name: Write them where the test looks
      ansible.builtin.copy:
        dest: "{{{{ lookup('ansible.builtin.env', 'HELPDESK_TEST_OUT') }}}}"
        content: "{{{{ dict(wanted | select('in', vars) | zip(wanted | select('in', vars) | map('extract', vars))) | to_json }}}}"
        mode: "0600"
"#,
        wanted.join(", ")
    )
}

/// Runs on the control node itself, with the Python ansible runs on.
pub(crate) const LOCAL_INVENTORY: &str = "[helpdesk_targets]\nlocalhost ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n";

/// Trust settings for tests that are not about trust.
pub(crate) const OPEN_TRUST: &str =
    "authentication: {require: none}\naccess:\n  - {requests: ['*'], senders: ['*']}\n";

/// A helpdesk folder on disk, made from the repository's defaults.
#[derive(Debug)]
pub(crate) struct Helpdesk {
    dir: TempDir,
    config: String,
}

impl Helpdesk {
    /// The shipped keywords, phrasebooks, playbooks and help templates, a
    /// localhost inventory, and a config pointing at the real ansible.
    pub(crate) fn from_defaults() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for folder in ["phrasebooks", "playbooks", "help_templates"] {
            copy_dir(&repo().join(folder), &dir.path().join(folder));
        }
        fs::copy(repo().join("keywords.txt"), dir.path().join("keywords.txt"))
            .unwrap_or_else(|e| panic!("{e}"));
        fs::write(dir.path().join("inventory"), LOCAL_INVENTORY).unwrap_or_else(|e| panic!("{e}"));
        // A closed relay where everyone may ask for everything: the trust
        // tests replace these two sections.
        let config = format!(
            "helpdesk_dir: .\nansible:\n  command: {}\n  timeout: 2m\n{OPEN_TRUST}",
            ansible_playbook().display()
        );
        let helpdesk = Self { dir, config };
        helpdesk.write_config();
        helpdesk
    }

    /// Every shipped playbook replaced by the echo playbook.
    pub(crate) fn with_echo_playbooks(self) -> Self {
        for entry in fs::read_dir(self.path().join("playbooks")).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            fs::write(&path, echo_playbook()).unwrap_or_else(|e| panic!("{e}"));
        }
        self
    }

    pub(crate) fn file(self, relative: &str, content: &str) -> Self {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(path, content).unwrap_or_else(|e| panic!("{e}"));
        self
    }

    /// Replaces config.yaml.
    pub(crate) fn config(mut self, yaml: &str) -> Self {
        yaml.clone_into(&mut self.config);
        self.write_config();
        self
    }

    /// `trust` (authentication and access sections) in place of
    /// [`OPEN_TRUST`].
    pub(crate) fn trusting(self, trust: &str) -> Self {
        assert!(self.config.contains(OPEN_TRUST), "{}", self.config);
        let config = self.config.replace(OPEN_TRUST, trust);
        self.config(&config)
    }

    /// `lines` added at the end of config.yaml.
    pub(crate) fn adding(self, lines: &str) -> Self {
        let config = format!("{}{lines}", self.config);
        self.config(&config)
    }

    /// Replies go to `server` over plain SMTP on loopback.
    pub(crate) fn replying_to(self, server: &smtp::SmtpServer) -> Self {
        self.with_mail(&format!(
            "  transport: smtp\n  smtp: {{host: 127.0.0.1, port: {}, security: none, timeout: 10s}}\n",
            server.port
        ))
    }

    /// Adds `helpdesk_address` and a `mail:` section with these lines.
    pub(crate) fn with_mail(self, mail_lines: &str) -> Self {
        let config = format!(
            "{}helpdesk_address: helpdesk@example.com\nmail:\n{mail_lines}",
            self.config
        );
        self.config(&config)
    }

    pub(crate) fn config_text(&self) -> &str {
        &self.config
    }

    fn write_config(&self) {
        fs::write(self.config_path(), &self.config).unwrap_or_else(|e| panic!("{e}"));
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.path().join("config.yaml")
    }

    fn out_path(&self) -> PathBuf {
        self.path().join("received.json")
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = helpdesk();
        command
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("HELPDESK_TEST_OUT", self.out_path());
        command
    }

    pub(crate) fn parse(&self, mail: &[u8]) -> Value {
        let out = exec(self.command(&["parse", "--format", "json"]), mail);
        assert_eq!(out.code, 0, "parse failed: {}", out.stderr);
        out.json()
    }

    pub(crate) fn run(&self, mail: &[u8]) -> Output {
        exec(self.command(&["run"]), mail)
    }

    /// Every journal row, newest first, through `helpdesk log --format json`.
    pub(crate) fn log_rows(&self) -> Vec<Value> {
        let out = exec(
            self.command(&["log", "--format", "json", "--limit", "1000"]),
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// What the echo playbook wrote, or `None` when no playbook ran.
    pub(crate) fn received(&self) -> Option<Value> {
        let text = fs::read_to_string(self.out_path()).ok()?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("echo output: {e}: {text}")))
    }

    /// The run logs in the state folder's runs/, after checking that no
    /// extra-vars file was left behind there.
    pub(crate) fn run_logs(&self) -> Vec<PathBuf> {
        let files = self.run_files();
        assert!(
            !files.iter().any(|f| f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vars-"))),
            "an extra-vars file was left behind: {files:?}"
        );
        files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|x| x == "log"))
            .collect()
    }

    /// Files in the state folder's runs/.
    pub(crate) fn run_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.path().join("state/runs")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Standard base64 with padding (RFC 4648), for mails written by hand.
pub(crate) fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// The command lines of running processes that contain `text`.
pub(crate) fn processes_with(text: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(text))
        .collect()
}

/// Polls `done` until it holds, failing after `limit`.
pub(crate) fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    wait_or(what, limit, &mut done, &String::new);
}

/// Waits, and on timeout fails with `context()` (a log) in the message.
pub(crate) fn wait_or(
    what: &str,
    limit: Duration,
    done: &mut dyn FnMut() -> bool,
    context: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends a mail with swaks (a real SMTP client) and `args`; fails with
/// its transcript when it fails.
pub(crate) fn swaks<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    let out = Command::new(need("swaks"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run swaks: {e}"));
    assert!(
        out.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A Debian tool the mail tests run. Never skipped: when it is missing the
/// test fails and says how to get it.
pub(crate) fn need(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(tool);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{tool} is not installed: run scripts/test, which installs postfix, swaks, procmail, fdm, opendkim, opendkim-tools, opendmarc and dnsmasq-base from Debian"
    );
}

/// `helpdesk --config CONFIG check --as USER`, as this (root) test runs it.
pub(crate) fn check_as(config: &Path, user: &str) -> Output {
    let mut check = helpdesk();
    check
        .arg("--config")
        .arg(config)
        .args(["check", "--as", user]);
    exec(check, b"")
}

/// A user name no other test (or earlier run) has, for the tests of
/// `setup --user`, which create the account: removed when dropped, with
/// its group and its sudoers drop-in.
pub(crate) struct TestUser(pub String);

impl TestUser {
    pub(crate) fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(format!("hdt{}x{n}", std::process::id()))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
        let _ = fs::remove_file(Path::new("/etc/sudoers.d").join(&self.0));
    }
}
