//! Dispatch: runs `ansible-playbook` for a decision.
//!
//! The program is started directly (an argument vector, never a shell) in
//! its own process group, with the variables in a 0600 YAML file passed as
//! `--extra-vars @file` and removed afterwards. Every string that is not
//! made of a few inert characters is tagged `!unsafe` there, so Ansible
//! never evaluates a value from a mail (JSON cannot carry that mark). Its
//! output goes to a per-run log. On timeout the whole process group is killed, so forks and
//! SSH connections go with it. A failed or timed-out playbook is an
//! outcome, not an error.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decide::redact::Secrets;
use crate::delivery::state;
use crate::desk::config::Ansible;

/// The callback plugin that reports a run's failures and recap as JSON.
const RESULT_PLUGIN: &str = include_str!("helpdesk_result.py");

/// Stands for the vars file in a command line shown before it exists.
pub(crate) const VARS_FILE_PLACEHOLDER: &str = "<vars-file>";

/// How long a playbook may take to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// What became of a playbook run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    /// Non-zero exit code, or killed by a signal (`code` then `None`).
    Failed {
        code: Option<i32>,
        signal: Option<i32>,
    },
    TimedOut {
        after: Duration,
    },
    /// It ended (with `code`, usually 0) without any host running a task:
    /// no host matched, every host was unreachable, or every task was
    /// skipped; `why` says which, for the journal and the reply.
    NothingRan {
        code: Option<i32>,
        why: String,
    },
}

/// A finished run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub outcome: Outcome,
    pub duration: Duration,
    pub log: PathBuf,
    /// What the callback plugin reported; `None` when Ansible died before
    /// it could say anything.
    pub report: Option<Report>,
}

/// Ansible's own account of a run, from the `helpdesk_result` callback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// The task running when the report was last written (the one that
    /// hung, after a timeout).
    #[serde(default)]
    pub running_task: Option<String>,
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// Recap counts per host.
    #[serde(default)]
    pub stats: std::collections::BTreeMap<String, Recap>,
    /// Per host, the tasks that ran (ok, changed or failed), fact
    /// gathering left out: it does nothing that was asked for.
    #[serde(default)]
    pub ran: std::collections::BTreeMap<String, u64>,
    /// The `hosts:` pattern of every play that matched no host.
    #[serde(default)]
    pub no_hosts_matched: Vec<String>,
    /// Whether Ansible got to its recap: until then a report says nothing
    /// of what did not run.
    #[serde(default)]
    pub finished: bool,
    /// Per host, its `helpdesk_report` fact as the playbook set it (a
    /// string, a list or a mapping), the playbook's own secrets already
    /// replaced: untrusted text for the reply, which `reply::report` makes
    /// plain, bounded and free of the request's secrets.
    #[serde(default)]
    pub reports: std::collections::BTreeMap<String, Value>,
}

impl Report {
    /// Why no host ran a task, when none did; `None` when one did, or when
    /// Ansible stopped before its recap (its exit status says it all).
    pub(crate) fn idle(&self) -> Option<String> {
        if !self.finished || self.ran.values().any(|n| *n > 0) {
            return None;
        }
        let hosts: Vec<&String> = self.stats.keys().collect();
        if hosts.is_empty() {
            return Some(match self.no_hosts_matched.as_slice() {
                [] => "the playbook has no task for any host".to_owned(),
                [one] => format!("no hosts matched the play's hosts: pattern `{one}`"),
                many => format!(
                    "no hosts matched the plays' hosts: patterns `{}`",
                    many.join("`, `")
                ),
            });
        }
        let unreachable = |host: &str| self.stats.get(host).is_some_and(|r| r.unreachable > 0);
        let why_unreachable = |host: &str| {
            self.failures
                .iter()
                .find(|f| f.unreachable && f.host == host)
                .map_or_else(|| host.to_owned(), |f| format!("{host} ({})", f.msg))
        };
        let each: Vec<String> = hosts.iter().map(|h| why_unreachable(h)).collect();
        let names: Vec<&str> = hosts.iter().map(|h| h.as_str()).collect();
        Some(if hosts.iter().all(|h| unreachable(h)) {
            format!("every host unreachable: {}", each.join("; "))
        } else if hosts.iter().all(|h| !unreachable(h)) {
            format!(
                "every task was skipped on every host ({})",
                names.join(", ")
            )
        } else {
            let each: Vec<String> = hosts
                .iter()
                .map(|h| match unreachable(h) {
                    true => format!("{} unreachable", why_unreachable(h)),
                    false => format!("{h}: every task skipped"),
                })
                .collect();
            format!("no host ran a task: {}", each.join("; "))
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Failure {
    pub host: String,
    pub task: String,
    pub msg: String,
    #[serde(default)]
    pub unreachable: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Recap {
    pub ok: u64,
    pub changed: u64,
    pub unreachable: u64,
    pub failures: u64,
    pub skipped: u64,
    pub rescued: u64,
    pub ignored: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DispatchError {
    #[error(
        "{path}: cannot prepare the run: {cause}: make the state_dir writable by the user helpdesk runs as"
    )]
    State { path: String, cause: io::Error },
    #[error(
        "cannot start {program}: {cause}: install ansible-core or set ansible.command in config.yaml to its path"
    )]
    Spawn { program: String, cause: io::Error },
    #[error("lost track of {program}: {cause}")]
    Wait { program: String, cause: io::Error },
}

/// The argument vector, with `vars_file` in place of the vars file.
pub(crate) fn command_line(ansible: &Ansible, playbook: &str, vars_file: &str) -> Vec<String> {
    let mut argv = vec![
        ansible.command.clone(),
        "-i".to_owned(),
        ansible.inventory.clone(),
        "--extra-vars".to_owned(),
        format!("@{vars_file}"),
    ];
    argv.extend(ansible.extra_args.iter().cloned());
    argv.push(playbook.to_owned());
    argv
}

/// Where a playbook runs and what it is given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job<'a> {
    pub playbook: &'a Path,
    pub workdir: &'a Path,
    pub vars: &'a Map<String, Value>,
    pub state_dir: &'a Path,
    /// The journal row of the request; with `label`, names the run log
    /// and the vars file.
    pub row: i64,
    /// Names the run log.
    pub label: &'a str,
    /// The helpdesk binary, started as `helpdesk guard` to kill the
    /// playbook's process group should this process die (SIGKILL, OOM)
    /// while the playbook runs. `None` in unit tests.
    pub guard: Option<&'a Path>,
}

/// What a run has ready before its playbook starts, in `state_dir/runs/`.
#[derive(Debug)]
struct Prepared {
    /// Removed when dropped.
    vars_file: tempfile::NamedTempFile,
    plugins: PathBuf,
    log_path: PathBuf,
    log: File,
}

fn state_error(path: &Path) -> impl FnOnce(io::Error) -> DispatchError + use<> {
    let path = path.display().to_string();
    move |cause| DispatchError::State { path, cause }
}

/// Writes the vars file, installs the callback plugin and creates the run
/// log (0600, a new file).
fn prepare(
    state_dir: &Path,
    vars: &Map<String, Value>,
    row: i64,
    label: &str,
) -> Result<Prepared, DispatchError> {
    let runs = state::runs(state_dir);
    state::create_folder(&runs).map_err(state_error(&runs))?;
    let mut vars_file = state::vars_file(state_dir, row).map_err(state_error(&runs))?;
    vars_file
        .write_all(extra_vars_yaml(vars).as_bytes())
        .and_then(|()| vars_file.flush())
        .map_err(state_error(vars_file.path()))?;
    let plugins = install_plugin(state_dir).map_err(state_error(state_dir))?;
    let (log, log_path) = state::run_log(state_dir, row, label).map_err(state_error(&runs))?;
    Ok(Prepared {
        vars_file,
        plugins,
        log_path,
        log,
    })
}

/// Starts `argv` in `workdir`, in a process group of its own, its output
/// going to the run log.
fn spawn(
    ansible: &Ansible,
    argv: &[String],
    workdir: &Path,
    prepared: &Prepared,
) -> Result<std::process::Child, DispatchError> {
    let (program, args) = argv.split_first().unwrap_or((&ansible.command, &[]));
    let output = || {
        prepared
            .log
            .try_clone()
            .map_err(state_error(&prepared.log_path))
    };
    Command::new(program)
        .args(args)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(output()?)
        .stderr(output()?)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("PYTHONUNBUFFERED", "1")
        .env(
            "HELPDESK_RESULT_FILE",
            state::run_report(&prepared.log_path),
        )
        .env("ANSIBLE_CALLBACK_PLUGINS", plugin_path(&prepared.plugins))
        .env_remove("ANSIBLE_FORCE_COLOR")
        .envs(
            ansible
                .environment
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .process_group(0)
        .spawn()
        .map_err(|cause| DispatchError::Spawn {
            program: program.clone(),
            cause,
        })
}

/// Runs a playbook to completion or timeout.
pub(crate) fn run(ansible: &Ansible, job: Job<'_>) -> Result<Run, DispatchError> {
    let Job {
        playbook,
        workdir,
        vars,
        state_dir,
        row,
        label,
        guard,
    } = job;
    // Started first, so that its start-up overlaps with writing the vars
    // file and starting the playbook; it is told what to watch below.
    let mut guard = guard.and_then(Guard::start);
    let mut prepared = prepare(state_dir, vars, row, label)?;
    let argv = command_line(
        ansible,
        &playbook.display().to_string(),
        &prepared.vars_file.path().display().to_string(),
    );
    let _ = writeln!(prepared.log, "# {}", shell_words(&argv));
    let _ = writeln!(
        prepared.log,
        "# started {}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );

    let started = Instant::now();
    let child = spawn(ansible, &argv, workdir, &prepared)?;
    if let Some(watching) = guard.as_mut()
        && !watching.watch(child.id(), prepared.vars_file.path())
    {
        guard = None;
    }
    let status =
        wait_with_timeout(child, ansible.timeout).map_err(|cause| DispatchError::Wait {
            program: argv.first().unwrap_or(&ansible.command).clone(),
            cause,
        })?;
    // The playbook is over: the guard stands down.
    drop(guard);
    let duration = started.elapsed();
    let outcome = match status {
        Waited::Exited(status) => outcome_of(status),
        Waited::TimedOut => Outcome::TimedOut {
            after: ansible.timeout,
        },
    };
    let Prepared {
        vars_file,
        log_path,
        mut log,
        ..
    } = prepared;
    drop(vars_file);
    let report: Option<Report> = fs::read_to_string(state::run_report(&log_path))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let outcome = judged(outcome, report.as_ref());
    footer(&mut log, &outcome, duration);
    Ok(Run {
        outcome,
        duration,
        log: log_path,
        report,
    })
}

/// Writes the callback plugin into `state_dir/plugins/callback/` (when it
/// is not there already, or differs) and returns that folder.
fn install_plugin(state_dir: &Path) -> io::Result<PathBuf> {
    let dir = state::plugins(state_dir);
    let path = dir.join("helpdesk_result.py");
    if fs::read_to_string(&path).ok().as_deref() != Some(RESULT_PLUGIN) {
        state::create_folder(&dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&dir)?;
        file.write_all(RESULT_PLUGIN.as_bytes())?;
        file.persist(&path).map_err(|e| e.error)?;
    }
    Ok(dir)
}

/// Our plugin folder first, then any the administrator set in the
/// environment.
fn plugin_path(ours: &Path) -> std::ffi::OsString {
    let mut path = ours.as_os_str().to_owned();
    if let Some(theirs) = std::env::var_os("ANSIBLE_CALLBACK_PLUGINS").filter(|v| !v.is_empty()) {
        path.push(":");
        path.push(theirs);
    }
    path
}

/// The extra-vars file: a flat YAML mapping of double-quoted scalars of
/// printable ASCII (everything else escaped), so no byte of a mail can
/// change the file's structure.
///
/// A string goes untagged only when every character is [`inert`]; every
/// other string is tagged `!unsafe`, so Ansible never renders it. That is
/// an allow-list: Ansible has more ways than `{` to make a string a
/// template (`#jinja2:` override headers, and whatever a later version
/// adds), and none of them can be spelled with the inert characters.
///
/// Why not tag everything: ansible-core 2.19 re-resolves an `!unsafe`
/// scalar as if it were unquoted, so `!unsafe "1234"` would arrive as an
/// integer and `!unsafe "no"` as false. The inert set is chosen so that
/// this cannot happen either: YAML 1.1's implicit resolvers (bool, int,
/// float, null, timestamp, merge, value, and the one-character `!`, `&`,
/// `*`) only ever match strings made of inert characters, so a string that
/// needs the tag always contains a character no resolver accepts, and
/// still arrives as a string. Both halves are tested against the resolver
/// patterns (here and in the `vars_round_trip` fuzz target) and against the
/// real `ansible-playbook` (tests/injection.rs).
pub(crate) fn extra_vars_yaml(vars: &Map<String, Value>) -> String {
    let mut out =
        String::from("# written by helpdesk: every string that is not plainly inert is !unsafe\n");
    for (name, value) in vars {
        let text = match value {
            Value::Array(_) | Value::Object(_) => Some(value.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let value = match (value, text) {
            (_, Some(text)) if text.chars().all(inert) => yaml_quoted(&text),
            (_, Some(text)) => format!("!unsafe {}", yaml_quoted(&text)),
            (Value::Number(n), None) => n.to_string(),
            (Value::Bool(b), None) => b.to_string(),
            _ => "null".to_owned(),
        };
        out.push_str(&yaml_quoted(name));
        out.push_str(": ");
        out.push_str(&value);
        out.push('\n');
    }
    out
}

/// The characters a string may consist of to reach Ansible untagged: ASCII
/// letters and digits, white space, and punctuation that starts no template
/// syntax of Jinja2 or Ansible (`{`, `%`, `#` and everything else are out).
/// It must also hold every character YAML 1.1's implicit resolvers accept
/// (see [`extra_vars_yaml`]), hence `~`, `<`, `=`, `!`, `&` and `*`.
pub(crate) fn inert(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\t'
                | '\n'
                | '.'
                | ','
                | '-'
                | '_'
                | '@'
                | '+'
                | ':'
                | '/'
                | '='
                | '~'
                | '<'
                | '>'
                | '!'
                | '&'
                | '*'
        )
}

fn yaml_quoted(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// What tells `helpdesk guard` that the playbook ended normally.
pub(crate) const GUARD_DONE: &str = "done\n";

/// A running `helpdesk guard`, outside the playbook's process group.
/// Dropped, it stands down: it is told `done` (or, never told a group, it
/// simply leaves) and is reaped on the side, since waiting for it would add
/// its start-up to every run.
#[derive(Debug)]
struct Guard {
    child: Option<std::process::Child>,
}

impl Guard {
    fn start(binary: &Path) -> Option<Self> {
        Command::new(binary)
            .arg("guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| tracing::warn!("cannot start the process guard {}: {e}", binary.display()))
            .ok()
            .map(|child| Self { child: Some(child) })
    }

    /// Tells the guard the playbook's process group and the vars file: if
    /// this process dies, the guard's stdin closes without `done`, and it
    /// kills the group and removes the file. `false` (and the guard is
    /// stopped) when it cannot be told.
    fn watch(&mut self, pgid: u32, vars_file: &Path) -> bool {
        let told = self
            .child
            .as_mut()
            .and_then(|child| child.stdin.as_mut())
            .is_some_and(|stdin| {
                stdin
                    .write_all(format!("{pgid}\n{}\n", vars_file.display()).as_bytes())
                    .and_then(|()| stdin.flush())
                    .is_ok()
            });
        if !told && let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        told
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(GUARD_DONE.as_bytes());
            }
            std::thread::spawn(move || child.wait());
        }
    }
}

/// `helpdesk guard`: reads a process group id and a vars file path, then
/// waits for its standard input to end. Without `done` first, the helpdesk
/// that started it died: the group is killed so that no playbook runs on
/// unwatched, and the vars file (it may hold secrets) is removed.
pub(crate) fn guard(input: &mut dyn io::Read) {
    let mut text = String::new();
    let _ = input.read_to_string(&mut text);
    let mut lines = text.lines();
    let Some(pgid) = lines
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    let vars_file = lines.next().map(PathBuf::from);
    if lines.any(|l| l.trim() == GUARD_DONE.trim()) {
        return;
    }
    kill_group(pgid, rustix::process::Signal::KILL);
    if let Some(file) = vars_file.filter(|f| state::is_vars_file(f)) {
        let _ = fs::remove_file(file);
    }
}

enum Waited {
    Exited(ExitStatus),
    TimedOut,
}

/// Waits on a thread so that a finished playbook is noticed at once, and
/// kills the child's whole process group when the timeout passes.
fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> io::Result<Waited> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let result = match rx.recv_timeout(timeout) {
        Ok(status) => status.map(Waited::Exited),
        Err(_) => {
            kill_group(pid, rustix::process::Signal::TERM);
            if rx.recv_timeout(GRACE).is_err() {
                kill_group(pid, rustix::process::Signal::KILL);
                let _ = rx.recv();
            }
            Ok(Waited::TimedOut)
        }
    };
    let _ = waiter.join();
    result
}

/// Signals the playbook's process group and every process descended from
/// it: Ansible's workers call `setsid()`, so a group signal alone misses
/// them (and the modules they run).
fn kill_group(pid: u32, signal: rustix::process::Signal) {
    // Collect first: once the leader dies its children move to init.
    let tree = descendants(pid);
    let as_pid = |p: u32| {
        i32::try_from(p)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
    };
    if let Some(leader) = as_pid(pid) {
        let _ = rustix::process::kill_process_group(leader, signal);
    }
    for member in tree.into_iter().filter_map(as_pid) {
        let _ = rustix::process::kill_process(member, signal);
    }
}

/// `root` and every process below it, from `/proc/*/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![root];
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the parenthesised command name: state, then ppid.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = vec![root];
    let mut next = 0;
    while let Some(&parent) = tree.get(next) {
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(pid, _)| *pid),
        );
        next += 1;
    }
    tree
}

/// The exit status's outcome, unless Ansible's report shows that no host
/// ran a task: an exit status of 0 then is no success ("no hosts matched"
/// exits 0), and a failure is one where nothing was done. A timeout stays
/// a timeout: the report of a killed run is not the whole story.
fn judged(outcome: Outcome, report: Option<&Report>) -> Outcome {
    let code = match outcome {
        Outcome::Succeeded => Some(0),
        Outcome::Failed { code, .. } => code,
        Outcome::TimedOut { .. } | Outcome::NothingRan { .. } => return outcome,
    };
    match report.and_then(Report::idle) {
        Some(why) => Outcome::NothingRan { code, why },
        None => outcome,
    }
}

fn outcome_of(status: ExitStatus) -> Outcome {
    if status.success() {
        Outcome::Succeeded
    } else {
        Outcome::Failed {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

fn footer(log: &mut File, outcome: &Outcome, duration: Duration) {
    let _ = writeln!(
        log,
        "# finished after {:.1}s: {}",
        duration.as_secs_f64(),
        describe(outcome)
    );
}

/// A short description for logs and replies.
pub(crate) fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Succeeded => "succeeded".into(),
        Outcome::Failed {
            code: Some(code), ..
        } => format!("failed with exit code {code}"),
        Outcome::Failed { signal, .. } => format!("killed by signal {}", signal.unwrap_or(0)),
        Outcome::TimedOut { after } => {
            format!("timed out after {}", humantime::format_duration(*after))
        }
        Outcome::NothingRan { why, .. } => format!("ran no task: {why}"),
    }
}

/// Quotes an argument vector for display, the way a shell would read it.
pub(crate) fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=@:,+%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rewrites a file (a run log, Ansible's result JSON) with every secret
/// value replaced, line by line (a secret value never holds a line
/// break), into a 0600 file that takes the original's place. Nothing to
/// do when the request gave no secret or the file does not exist.
pub(crate) fn scrub_secrets(secrets: &Secrets, path: &Path) -> std::io::Result<()> {
    use std::io::{BufRead, BufWriter, Write};
    if !secrets.any() {
        return Ok(());
    }
    let input = match std::fs::File::open(path) {
        Ok(file) => std::io::BufReader::new(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let scrubbed = tempfile::Builder::new()
        .prefix(".scrub-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)?;
    let mut out = BufWriter::new(scrubbed.as_file());
    for line in input.split(b'\n') {
        let line = line?;
        // Ansible writes UTF-8; bytes that are not are kept as they are.
        match std::str::from_utf8(&line) {
            Ok(text) => out.write_all(secrets.scrub(text).as_bytes())?,
            Err(_) => out.write_all(&line)?,
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    drop(out);
    scrubbed.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(command: &str, timeout: Duration) -> Ansible {
        Ansible {
            command: command.into(),
            inventory: "localhost,".into(),
            timeout,
            extra_args: vec!["--diff".into()],
            environment: Vec::new(),
        }
    }

    #[test]
    fn command_line_shape() {
        let argv = command_line(
            &settings("ansible-playbook", Duration::from_secs(1)),
            "/d/p.yaml",
            "/tmp/v.json",
        );
        assert_eq!(
            argv,
            [
                "ansible-playbook",
                "-i",
                "localhost,",
                "--extra-vars",
                "@/tmp/v.json",
                "--diff",
                "/d/p.yaml"
            ]
        );
    }

    #[test]
    fn extra_vars_are_unsafe_quoted_ascii() {
        let vars = serde_json::json!({
            "targets": "{{ lookup('pipe', 'id') }}",
            "quote": "a\"b\\c\nd\u{0}é😀\u{2028}",
            "password": "1234",
            "amount": 9.3,
            "selftargets": true,
            "unit": null,
        });
        let yaml = extra_vars_yaml(vars.as_object().unwrap());
        assert_eq!(
            yaml,
            "# written by helpdesk: every string that is not plainly inert is !unsafe\n\
             \"targets\": !unsafe \"{{ lookup('pipe', 'id') }}\"\n\
             \"quote\": !unsafe \"a\\\"b\\\\c\\u000Ad\\u0000\\u00E9\\U0001F600\\u2028\"\n\
             \"password\": \"1234\"\n\
             \"amount\": 9.3\n\
             \"selftargets\": true\n\
             \"unit\": null\n"
        );
        assert!(yaml.is_ascii());
    }

    /// Strings PyYAML's resolvers read as something other than a string.
    const YAML_SPECIALS: &[&str] = &[
        "1234",
        "-0",
        "+1",
        "017",
        "0x1F",
        "0b101",
        "1_000",
        "1:20",
        "1.5e+3",
        "1.",
        ".5",
        ".inf",
        "-.Inf",
        ".NaN",
        "190:20:30.15",
        "no",
        "No",
        "yes",
        "ON",
        "off",
        "true",
        "False",
        "~",
        "null",
        "Null",
        "NULL",
        "",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43.10 -5",
        "2001-12-14\t21:59:43 Z",
        "<<",
        "=",
        "!",
        "&",
        "*",
    ];

    #[test]
    fn yaml_specials_are_inert_so_they_go_untagged_and_stay_strings() {
        for special in YAML_SPECIALS.iter().chain(&["1234\n", "no\n"]) {
            assert!(
                crate::fuzzing::yaml11::plain_type(special).is_some() || special.is_empty(),
                "{special:?} is not special: the list is wrong"
            );
            assert!(special.chars().all(inert), "{special:?}");
            let vars = serde_json::json!({ "v": special });
            let yaml = extra_vars_yaml(vars.as_object().unwrap());
            assert!(!yaml.contains(": !unsafe"), "{yaml}");
            assert_eq!(
                crate::fuzzing::yaml11::read_extra_vars(&yaml),
                [("v".to_owned(), Some((*special).to_owned()))]
            );
        }
    }

    #[test]
    fn a_tagged_string_is_never_resolved_into_another_type() {
        // Every character that is not inert, placed before, inside and
        // after every string a resolver would turn into another type.
        let mut others: Vec<char> = (0u8..=0x7F)
            .map(char::from)
            .filter(|c| !inert(*c))
            .collect();
        others.extend([
            '\u{85}', '\u{A0}', '\u{2028}', '\u{FF5B}', '\u{FF10}', '\u{0661}', 'é', '😀',
        ]);
        let mut checked = 0;
        for special in YAML_SPECIALS {
            for c in &others {
                let middle = special.len() / 2;
                let (head, tail) = special.split_at(special.ceil_char_boundary(middle));
                for text in [
                    format!("{c}{special}"),
                    format!("{special}{c}"),
                    format!("{head}{c}{tail}"),
                ] {
                    let vars = serde_json::json!({ "v": text });
                    let yaml = extra_vars_yaml(vars.as_object().unwrap());
                    assert!(yaml.contains(": !unsafe \""), "{text:?} went untagged");
                    assert_eq!(
                        crate::fuzzing::yaml11::read_extra_vars(&yaml),
                        [("v".to_owned(), Some(text.clone()))],
                        "{text:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 5_000, "{checked}");
    }

    /// Issue 14: a finished run where no host ran a task says why; one
    /// where a task ran, or that never got to its recap, says nothing.
    #[test]
    fn idle_runs_say_why() {
        let recap = |unreachable, skipped| Recap {
            unreachable,
            skipped,
            ..Recap::default()
        };
        let report = |stats: &[(&str, Recap)], ran: &[(&str, u64)]| Report {
            stats: stats.iter().map(|(h, r)| ((*h).to_owned(), *r)).collect(),
            ran: ran.iter().map(|(h, n)| ((*h).to_owned(), *n)).collect(),
            finished: true,
            ..Report::default()
        };
        let none = Report {
            no_hosts_matched: vec!["webservers".into()],
            ..report(&[], &[])
        };
        assert_eq!(
            none.idle().as_deref(),
            Some("no hosts matched the play's hosts: pattern `webservers`")
        );
        let skipped = report(&[("a", recap(0, 2)), ("b", recap(0, 1))], &[]);
        assert_eq!(
            skipped.idle().as_deref(),
            Some("every task was skipped on every host (a, b)")
        );
        let mut far = report(&[("far", recap(1, 0))], &[]);
        far.failures.push(Failure {
            host: "far".into(),
            task: "ping".into(),
            msg: "cannot resolve".into(),
            unreachable: true,
        });
        assert_eq!(
            far.idle().as_deref(),
            Some("every host unreachable: far (cannot resolve)")
        );
        let mixed = report(&[("a", recap(0, 1)), ("far", recap(1, 0))], &[]);
        assert_eq!(
            mixed.idle().as_deref(),
            Some("no host ran a task: a: every task skipped; far unreachable")
        );
        let ran = report(&[("a", recap(0, 1)), ("far", recap(1, 0))], &[("a", 1)]);
        assert_eq!(ran.idle(), None);
        let unfinished = Report {
            finished: false,
            ..report(&[], &[])
        };
        assert_eq!(unfinished.idle(), None);
        assert_eq!(judged(Outcome::Succeeded, Some(&ran)), Outcome::Succeeded);
        assert_eq!(
            judged(
                Outcome::Failed {
                    code: Some(4),
                    signal: None
                },
                Some(&far)
            ),
            Outcome::NothingRan {
                code: Some(4),
                why: "every host unreachable: far (cannot resolve)".into()
            }
        );
        let timed_out = Outcome::TimedOut {
            after: Duration::from_secs(1),
        };
        assert_eq!(judged(timed_out.clone(), Some(&none)), timed_out);
    }

    #[test]
    fn shell_words_quotes_what_needs_it() {
        let argv = vec!["a".to_owned(), "it's here".to_owned(), String::new()];
        assert_eq!(shell_words(&argv), r"a 'it'\''s here' ''");
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let script = dir.path().join("slow");
        let marker = dir.path().join("grandchild-survived");
        // The script ignores its arguments, starts a grandchild that would
        // write a marker later, and sleeps past the timeout.
        fs::write(
            &script,
            format!(
                "#!/bin/sh\n(sleep 2; touch {}) &\nsleep 30\n",
                marker.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let run = run(
            &settings(&script.display().to_string(), Duration::from_millis(300)),
            Job {
                playbook: Path::new("p.yaml"),
                workdir: dir.path(),
                vars: &Map::new(),
                state_dir: &dir.path().join("state"),
                row: 7,
                label: "slow",
                guard: None,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            run.outcome,
            Outcome::TimedOut {
                after: Duration::from_millis(300)
            }
        );
        assert!(run.duration < Duration::from_secs(5), "{:?}", run.duration);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(
            !marker.exists(),
            "a process of the group outlived the timeout"
        );
        // The vars file is gone, the log stays.
        let left: Vec<String> = fs::read_dir(dir.path().join("state/runs"))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].ends_with(".log"));
        assert_eq!(run.report, None);
    }
}
