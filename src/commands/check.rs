//! `helpdesk check`: what is wrong with a helpdesk folder, reported like a
//! compiler (`file:line: error|warning: message`) before a real mail finds
//! out.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::delivery::state;
use crate::desk::config::{Config, PasswordSource, Transport};
use crate::desk::keywords::Keywords;
use crate::desk::{DeskErrorKind, HELP, Located};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    Error,
    Warning,
    /// Not a problem: what the configuration means.
    Note,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub file: String,
    pub line: Option<u64>,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        match self.line {
            Some(line) => write!(f, "{}:{line}: {severity}: {}", self.file, self.message),
            None => write!(f, "{}: {severity}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, Default)]
struct Report {
    problems: Vec<Problem>,
}

impl Report {
    fn add(
        &mut self,
        severity: Severity,
        file: impl Into<String>,
        line: Option<u64>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: file.into(),
            line,
            severity,
            message: message.into(),
        });
    }

    fn error(&mut self, file: impl Into<String>, line: Option<u64>, message: impl Into<String>) {
        self.add(Severity::Error, file, line, message);
    }

    fn note(&mut self, file: impl Into<String>, line: Option<u64>, message: impl Into<String>) {
        self.add(Severity::Note, file, line, message);
    }

    fn warning(&mut self, file: impl Into<String>, line: Option<u64>, message: impl Into<String>) {
        self.add(Severity::Warning, file, line, message);
    }
}

/// Checks the folder that `config_path` describes. `online` also talks to
/// the SMTP server.
pub(crate) fn check(config_path: &Path, online: bool) -> Vec<Problem> {
    let mut report = Report::default();
    let shown = config_path.display().to_string();
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            report.problems.push(error_problem(&e));
            return report.problems;
        }
    };
    check_permissions(&mut report, config_path, &config);
    check_state_modes(&mut report, &config);
    let ansible_runs = check_ansible_command(&mut report, config_path, &config);
    check_smtp_host(&mut report, config_path, &config);
    let keywords = match config.desk.keywords() {
        Ok(keywords) => Some(keywords),
        Err(e) => {
            report.problems.push(error_problem(&e));
            None
        }
    };
    if let Some(keywords) = &keywords {
        check_keywords(&mut report, &config, keywords, ansible_runs);
        check_access(&mut report, config_path, &shown, keywords);
        check_approvals(&mut report, &shown, &config, keywords);
    }
    if config.access.is_none() {
        report.error(&shown, None, "no access: grants, so no request will ever run: add at least one (see config.example.yaml)");
    }
    if config.authentication.is_none() {
        report.error(
            &shown,
            None,
            "no authentication: section, so no sender is ever trusted (see config.example.yaml)",
        );
    }
    if let Some(auth) = &config.authentication
        && auth.require != crate::desk::config::Require::None
    {
        check_position(&mut report, &shown, auth);
    }
    if config.mail.is_none() {
        report.warning(&shown, None, "no mail: section, so nobody gets a reply");
    }
    check_sources(&mut report, &shown, &config, online);
    if online {
        check_smtp(&mut report, &shown, &config);
    }
    report
        .problems
        .sort_by(|a, b| (&a.file, a.line, a.severity).cmp(&(&b.file, b.line, b.severity)));
    report.problems
}

/// Says what each `approvals:` rule means; a warning for a rule that
/// names an unknown request type or mails nobody.
fn check_approvals(report: &mut Report, shown: &str, config: &Config, keywords: &Keywords) {
    for (number, rule) in config.approvals.iter().enumerate() {
        let at = format!("approvals rule {}", number + 1);
        for unknown in rule
            .requests
            .iter()
            .filter(|r| *r != "*" && !keywords.request_types().any(|known| known == r.as_str()))
        {
            report.warning(
                shown,
                None,
                format!("{at}: no request type {unknown} in keywords.txt, so it never applies"),
            );
        }
        if rule.mailed().next().is_none() || config.mail.is_none() {
            report.warning(shown, None, format!("{at}: nobody is mailed an approval request (name an approver by address, and set mail:); helpdesk approve ID still decides"));
        }
        report.add(
            Severity::Note,
            shown,
            None,
            format!(
                "{at}: {} from {} wait for {} approval(s) from {}, for at most {}",
                rule.requests.join(", "),
                rule.senders.join(", "),
                rule.required,
                rule.approvers.join(", "),
                humantime::format_duration(rule.expires)
            ),
        );
    }
}

/// Says which layout of Authentication-Results is in effect; a warning
/// when config.yaml leaves it to the default.
fn check_position(report: &mut Report, shown: &str, auth: &crate::desk::config::Authentication) {
    let mx = auth.received_by.join("/");
    let layout = match auth.position() {
        crate::desk::config::Position::Above => format!(
            "only Authentication-Results above {mx}'s own Received header count (Postfix with OpenDKIM/OpenDMARC, rspamd)"
        ),
        crate::desk::config::Position::Below => format!(
            "only the Authentication-Results directly below {mx}'s own Received header counts (Gmail)"
        ),
    };
    if auth.position.is_none() {
        report.warning(
            shown,
            None,
            format!(
                "authentication.position is not set, so above is assumed: {layout}; set position: above or position: below to say where your MX writes them (look at a delivered mail), or mail will not authenticate"
            ),
        );
    } else {
        report.add(
            Severity::Note,
            shown,
            None,
            format!(
                "authentication.position: {}: {layout}",
                auth.position().as_str()
            ),
        );
    }
}

/// A located error, as `check` reports it: its place and its message.
fn error_problem<K: fmt::Display>(error: &Located<K>) -> Problem {
    Problem {
        file: error.file.clone(),
        line: error.line,
        severity: Severity::Error,
        message: error.kind.to_string(),
    }
}

/// `ansible_runs`: ansible.command can be started, so each playbook is
/// syntax-checked with it (else that one error says it all).
fn check_keywords(report: &mut Report, config: &Config, keywords: &Keywords, ansible_runs: bool) {
    let file = keywords.file().to_owned();
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for section in keywords.sections() {
        for phrase in &section.phrases {
            let folded = crate::desk::phrases::fold_phrase(&phrase.text);
            match seen.get(&folded) {
                Some((other, line)) if *other != section.name => report.error(
                    &file,
                    Some(phrase.line as u64),
                    format!(
                        "keyword '{}' is also in *{other}* (line {line}): a subject with it always goes to the first; keep it in one section",
                        phrase.text
                    ),
                ),
                Some(_) => {}
                None => {
                    seen.insert(folded, (section.name.clone(), phrase.line));
                }
            }
        }
        let name = section.name.as_str();
        let line = Some(section.line as u64);
        match config.desk.phrasebook(name) {
            Ok(_) => {}
            Err(Located {
                file: path,
                kind: DeskErrorKind::MissingForType { .. },
                ..
            }) => report.error(
                &file,
                line,
                format!("*{name}* has no phrasebook: create {path}"),
            ),
            Err(other) => report.problems.push(error_problem(&other)),
        }
        if name != HELP {
            match config.desk.playbook(name) {
                Ok(playbook) => {
                    if let Some(path) = playbook.path
                        && ansible_runs
                    {
                        check_playbook(report, config, &path);
                    }
                }
                Err(Located {
                    file: path,
                    kind: DeskErrorKind::MissingForType { .. },
                    ..
                }) => {
                    report.error(
                        &file,
                        line,
                        format!("*{name}* has no playbook: create {path}"),
                    );
                }
                Err(other) => report.problems.push(error_problem(&other)),
            }
        }
        let help = format!("help_templates/{name}_help.txt");
        if matches!(config.desk.read(&help), Ok(None)) {
            report.warning(
                &file,
                line,
                format!(
                    "*{name}* has no help template: create {}",
                    config.desk.display(&help)
                ),
            );
        }
    }
}

/// `ansible-playbook --syntax-check`, when Ansible is installed.
fn check_playbook(report: &mut Report, config: &Config, path: &Path) {
    let shown = path.display().to_string();
    let output = Command::new(&config.ansible.command)
        .args(["--syntax-check", "-i", &config.ansible.inventory])
        .arg(path)
        .current_dir(config.desk.root().unwrap_or(Path::new(".")))
        .env("ANSIBLE_NOCOLOR", "1")
        .output();
    let Ok(output) = output else {
        report.warning(
            &shown,
            None,
            format!(
                "not syntax-checked: {} cannot be run",
                config.ansible.command
            ),
        );
        return;
    };
    if output.status.success() {
        return;
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Ansible 2.19 names the place: "Origin: /path/playbook.yaml:7:3".
    let line = text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Origin: ")?;
        let mut parts = rest.rsplitn(3, ':');
        let _column = parts.next()?;
        parts.next()?.parse::<u64>().ok()
    });
    let message = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("[ERROR]: ")
                .or_else(|| l.trim().strip_prefix("ERROR! "))
        })
        .unwrap_or("ansible-playbook --syntax-check failed")
        .to_owned();
    report.error(
        &shown,
        line.or(Some(1)),
        format!("ansible-playbook --syntax-check: {message}"),
    );
}

/// The parts of config.yaml whose lines `check` names.
#[derive(Debug, Deserialize)]
struct AccessOnly {
    #[serde(default)]
    access: Vec<SpannedGrant>,
    #[serde(default)]
    mail: Option<SpannedMail>,
    #[serde(default)]
    ansible: Option<SpannedAnsible>,
}

#[derive(Debug, Deserialize)]
struct SpannedAnsible {
    command: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct SpannedGrant {
    #[serde(default)]
    requests: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct SpannedMail {
    #[serde(default)]
    smtp: Option<SpannedSmtp>,
}

#[derive(Debug, Deserialize)]
struct SpannedSmtp {
    password_file: Option<Spanned<PathBuf>>,
    host: Option<Spanned<String>>,
}

fn spanned(config_path: &Path) -> Option<AccessOnly> {
    let text = std::fs::read_to_string(config_path).ok()?;
    serde_saphyr::from_str(&text).ok()
}

fn check_access(report: &mut Report, config_path: &Path, shown: &str, keywords: &Keywords) {
    let Some(spanned) = spanned(config_path) else {
        return;
    };
    let known: Vec<&str> = keywords.request_types().collect();
    for (number, grant) in spanned.access.iter().enumerate() {
        for request in &grant.requests {
            if request.value != "*" && !known.contains(&request.value.as_str()) {
                report.error(
                    shown,
                    Some(request.referenced.line()),
                    format!(
                        "access grant {} names '{}', which keywords.txt does not define ({})",
                        number + 1,
                        request.value,
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

fn check_permissions(report: &mut Report, config_path: &Path, config: &Config) {
    let shown = config_path.display().to_string();
    if let Ok(meta) = std::fs::metadata(config_path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            report.error(&shown, Some(1), format!("writable by group or others (mode {mode:o}): they could change who may run playbooks; chmod 644 or stricter"));
        } else if mode & 0o004 != 0 {
            report.warning(
                &shown,
                Some(1),
                format!(
                    "readable by others (mode {mode:o}): it shows your grants and layout; chmod 640"
                ),
            );
        }
    }
    let Some(mail) = &config.mail else { return };
    let Transport::Smtp(smtp) = &mail.transport else {
        return;
    };
    let Some(PasswordSource::File(path)) = &smtp.password else {
        return;
    };
    let line =
        spanned(config_path).and_then(|s| s.mail?.smtp?.password_file.map(|p| p.referenced.line()));
    match std::fs::metadata(path) {
        Err(e) => report.error(
            &shown,
            line,
            format!("mail.smtp.password_file {}: {e}", path.display()),
        ),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                report.warning(
                    &shown,
                    line,
                    format!("{} is readable by group or others (mode {mode:o}): replies will not be sent until you chmod 600 it", path.display()),
                );
            }
        }
    }
}

/// Loose paths reported one by one before the rest are summed up.
const LOOSE_SHOWN: usize = 20;

/// The state folder holds senders, subjects, run logs and raw mail: no
/// folder in it may be listable and no file readable by anyone but its
/// owner (0700 and 0600), except the metrics file, which is for others.
/// Symbolic links are not followed.
fn check_state_modes(report: &mut Report, config: &Config) {
    let mut loose = 0usize;
    let mut pending = vec![config.state_dir.clone()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        let is_dir = meta.is_dir();
        if is_dir && let Ok(entries) = std::fs::read_dir(&path) {
            pending.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
        let Some(wanted) = state::wanted_mode(&path, &meta, &config.metrics_file) else {
            continue;
        };
        if !state::is_loose(mode) {
            continue;
        }
        loose += 1;
        if loose > LOOSE_SHOWN {
            continue;
        }
        let shown = path.display().to_string();
        let what = if is_dir { "listable" } else { "readable" };
        let fix = format!("chmod {wanted:o}");
        if mode & 0o022 != 0 {
            report.error(&shown, None, format!("writable by group or others (mode {mode:o}): they could change what the helpdesk journals and runs; {fix} {shown}"));
        } else {
            let metrics = if path == config.state_dir {
                " (for the metrics collector, set metrics_file to a path outside it)"
            } else {
                ""
            };
            report.warning(&shown, None, format!("{what} by group or others (mode {mode:o}): the state folder holds senders, subjects and raw mail{metrics}; {fix} {shown}"));
        }
    }
    if loose > LOOSE_SHOWN {
        report.warning(
            config.state_dir.display().to_string(),
            None,
            format!(
                "{} more files or folders in it are readable by group or others; chmod -R go= {}",
                loose - LOOSE_SHOWN,
                config.state_dir.display()
            ),
        );
    }
}

/// Why `command` (a path, or a name looked up on PATH) cannot be started,
/// or `None` when it can.
fn not_runnable(command: &str) -> Option<String> {
    let runnable = |path: &Path| {
        std::fs::metadata(path).map(|meta| (meta.is_file(), meta.permissions().mode() & 0o777))
    };
    if command.contains('/') {
        return match runnable(Path::new(command)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such file".into()),
            Err(e) => Some(e.to_string()),
            Ok((false, _)) => Some("not a file".into()),
            Ok((true, mode)) if mode & 0o111 == 0 => {
                Some(format!("not executable (mode {mode:o})"))
            }
            Ok(_) => None,
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .any(|dir| matches!(runnable(&dir.join(command)), Ok((true, mode)) if mode & 0o111 != 0));
    (!found).then(|| "not found on PATH".into())
}

/// An `ansible.command` that cannot be started fails every request: one
/// error at its line, with the fix. Returns whether it can be started.
fn check_ansible_command(report: &mut Report, config_path: &Path, config: &Config) -> bool {
    let command = &config.ansible.command;
    let Some(why) = not_runnable(command) else {
        return true;
    };
    let line = spanned(config_path).and_then(|s| s.ansible?.command.map(|c| c.referenced.line()));
    let set = if line.is_some() {
        "ansible.command"
    } else {
        "ansible.command is not set and"
    };
    report.error(
        config_path.display().to_string(),
        line,
        format!(
            "{set} {command:?} cannot be run: {why}; no playbook can run. Install ansible-core (python3 -m venv /opt/ansible && /opt/ansible/bin/pip install ansible-core) and set ansible.command to the full path of its ansible-playbook (/opt/ansible/bin/ansible-playbook)"
        ),
    );
    false
}

/// `host: localhost:2525` is read as a host name (and port 25 or 587):
/// the port has its own key.
fn check_smtp_host(report: &mut Report, config_path: &Path, config: &Config) {
    let Some(mail) = &config.mail else { return };
    let Transport::Smtp(smtp) = &mail.transport else {
        return;
    };
    let Some((host, port)) = host_and_port(&smtp.host) else {
        return;
    };
    let line = spanned(config_path).and_then(|s| s.mail?.smtp?.host.map(|h| h.referenced.line()));
    report.error(
        config_path.display().to_string(),
        line,
        format!(
            "mail.smtp.host {:?} has a port in it, so it would be looked up as a host name and port {} used: set mail.smtp.host: {host} and mail.smtp.port: {port}",
            smtp.host, smtp.port
        ),
    );
}

/// `name:port` or `[v6]:port` split in two; `None` for a plain name or
/// an IPv6 address without a port.
pub(crate) fn host_and_port(text: &str) -> Option<(&str, &str)> {
    let (host, port) = text.rsplit_once(':')?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let port_like = !port.is_empty() && port.chars().all(|c| c.is_ascii_digit());
    (port_like && !host.is_empty() && (bracketed || !host.contains(':')))
        .then(|| (host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// `sources:` the password files and Maildirs offline; `online` logs in
/// to each IMAP source and selects its mailbox, as `fetch` would.
fn check_sources(report: &mut Report, shown: &str, config: &Config, online: bool) {
    use crate::desk::sources::SourceKind;
    for source in &config.sources {
        let name = &source.name;
        let problem = match &source.kind {
            SourceKind::Imap(imap) => match &imap.password {
                PasswordSource::File(path) => crate::reply::transport::password(&imap.password)
                    .err()
                    .map(|e| format!("{e} (sources {name}: {})", path.display())),
                PasswordSource::Env(_) => None,
            },
            SourceKind::Maildir(dir) => ["new", "cur", "tmp"]
                .iter()
                .find(|part| !dir.join(part).is_dir())
                .map(|part| format!("sources {name}: {} has no {part}/: mkdir -p {0}/new {0}/cur {0}/tmp, or fix the path", dir.display())),
        };
        if let Some(problem) = problem {
            report.error(shown, None, problem);
            continue;
        }
        if online && let SourceKind::Imap(imap) = &source.kind {
            match crate::fetch::probe(imap) {
                Ok(said) => report.note(shown, None, format!("sources {name}: {said}")),
                Err(failure) => report.error(
                    shown,
                    None,
                    format!(
                        "sources {name}: {}: {}",
                        failure.problem.as_str(),
                        failure.message
                    ),
                ),
            }
        }
    }
}

fn check_smtp(report: &mut Report, shown: &str, config: &Config) {
    let Some(mail) = &config.mail else { return };
    let Transport::Smtp(smtp) = &mail.transport else {
        return;
    };
    let address = format!("{}:{}", smtp.host, smtp.port);
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| std::net::TcpStream::connect_timeout(&addr, smtp.timeout).map(|_| ()));
    match reachable {
        Some(Ok(())) => {}
        Some(Err(e)) => report.error(
            shown,
            None,
            format!("mail.smtp: cannot reach {address}: {e}"),
        ),
        None => report.error(shown, None, format!("mail.smtp: cannot resolve {address}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_the_smtp_host() {
        assert_eq!(host_and_port("localhost:2525"), Some(("localhost", "2525")));
        assert_eq!(host_and_port("[::1]:2525"), Some(("::1", "2525")));
        for plain in [
            "localhost",
            "mail.example.com",
            "::1",
            "2001:db8::1",
            "host:",
            ":25",
        ] {
            assert_eq!(host_and_port(plain), None, "{plain}");
        }
    }

    #[test]
    fn runnable_commands() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ansible-playbook");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        chmod(&file, 0o644);
        let shown = file.display().to_string();
        assert_eq!(
            not_runnable(&shown).as_deref(),
            Some("not executable (mode 644)")
        );
        chmod(&file, 0o755);
        assert_eq!(not_runnable(&shown), None);
        assert_eq!(
            not_runnable(&dir.path().display().to_string()).as_deref(),
            Some("not a file")
        );
        assert!(not_runnable(&format!("{shown}-missing")).is_some());
        assert_eq!(not_runnable("sh"), None);
        assert_eq!(
            not_runnable("no-such-command-here").as_deref(),
            Some("not found on PATH")
        );
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Every looser mode in the state folder is reported (the folder and
    /// a file in a subfolder), with the chmod that fixes it; the metrics
    /// file and private paths are not.
    #[test]
    fn state_modes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("archive/2026-12-01")).unwrap();
        let mail = state.join("archive/2026-12-01/1.eml");
        let journal = state.join("journal.sqlite");
        let metrics = state.join("metrics.prom");
        for file in [&mail, &journal, &metrics] {
            std::fs::write(file, "x").unwrap();
            chmod(file, 0o600);
        }
        for folder in [
            &state,
            &state.join("archive"),
            &state.join("archive/2026-12-01"),
        ] {
            chmod(folder, 0o700);
        }
        chmod(&metrics, 0o644);
        let mut config = Config::builtin();
        config.state_dir.clone_from(&state);
        config.metrics_file.clone_from(&metrics);
        let problems = |config: &Config| {
            let mut report = Report::default();
            check_state_modes(&mut report, config);
            report.problems
        };
        assert_eq!(problems(&config), vec![], "all private");

        chmod(&state, 0o755);
        chmod(&mail, 0o644);
        chmod(&journal, 0o666);
        let found: Vec<String> = problems(&config).iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        let expect = |path: &Path, head: &str, fix: &str| {
            let shown = path.display().to_string();
            assert!(
                found
                    .iter()
                    .any(|line| line.starts_with(&format!("{shown}: {head}"))
                        && line.ends_with(&format!("{fix} {shown}"))),
                "no {shown}: {head} ... {fix}: {found:#?}"
            );
        };
        expect(
            &state,
            "warning: listable by group or others (mode 755)",
            "chmod 700",
        );
        expect(
            &mail,
            "warning: readable by group or others (mode 644)",
            "chmod 600",
        );
        expect(
            &journal,
            "error: writable by group or others (mode 666)",
            "chmod 600",
        );

        // Many: the first ones by name, then one line for the rest.
        for n in 0..LOOSE_SHOWN + 5 {
            let file = state.join(format!("run-{n}.log"));
            std::fs::write(&file, "x").unwrap();
            chmod(&file, 0o640);
        }
        let found = problems(&config);
        assert_eq!(found.len(), LOOSE_SHOWN + 1);
        assert!(
            found[LOOSE_SHOWN]
                .message
                .starts_with("8 more files or folders"),
            "{:?}",
            found[LOOSE_SHOWN]
        );
    }
}
