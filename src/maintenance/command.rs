//! A provider's own parser: a program (argv, no shell) that gets the raw
//! mail on its standard input and prints one JSON object on its standard
//! output, either a maintenance
//!
//! ```json
//! {"maintenance_id": "ACME-42", "status": "CONFIRMED",
//!  "start": "2027-03-01T01:00:00-05:00", "end": "2027-03-01T03:00:00-05:00",
//!  "account": null, "sequence": 1, "stamp": null, "summary": "Fibre work",
//!  "organizer": null, "circuits": [{"id": "ACME-7", "impact": "DEGRADED"}]}
//! ```
//!
//! (only `maintenance_id`, `status`, `start` and `end` are required; times
//! in RFC 3339 with an offset; `provider` is accepted and ignored, any
//! other key refused) or `{"unreadable": "why"}`. Its environment is
//! PATH, LANG, LC_ALL, HOME and `HELPDESK_PROVIDER`; it runs in its own
//! process group, for at most `BUDGET`; a non-zero exit status makes the
//! notice unreadable, with the last line of its stderr as the reason.
//! What it prints goes through the same cleaning and bounds as the
//! iCalendar reader's values.

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::desk::maintenance::Provider;
use crate::maintenance::{
    Circuit, MAX_CIRCUITS, MAX_SUMMARY, Maintenance, Notice, Status, clean_id, clean_text,
};

/// How long a parser may run.
const BUDGET: Duration = Duration::from_secs(30);
/// What is read of its standard output, and of its standard error.
const MAX_STDOUT: u64 = 1024 * 1024;
const MAX_STDERR: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Printed {
    Unreadable(Unreadable),
    Maintenance(Box<RawMaintenance>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unreadable {
    unreadable: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    maintenance_id: String,
    status: String,
    start: String,
    end: String,
    #[serde(default)]
    #[allow(dead_code)]
    provider: Option<String>,
    account: Option<String>,
    sequence: Option<i64>,
    stamp: Option<String>,
    summary: Option<String>,
    organizer: Option<String>,
    #[serde(default)]
    circuits: Vec<RawCircuit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCircuit {
    id: String,
    impact: Option<String>,
}

pub(crate) fn read(
    provider: &Provider,
    argv: &[String],
    raw: &[u8],
    date: Option<DateTime<Utc>>,
) -> Notice {
    read_within(provider, argv, raw, date, BUDGET)
}

pub(crate) fn read_within(
    provider: &Provider,
    argv: &[String],
    raw: &[u8],
    date: Option<DateTime<Utc>>,
    budget: Duration,
) -> Notice {
    let shown = argv.first().map_or("(none)", String::as_str);
    match run(provider, argv, raw, budget) {
        Ok(stdout) => match serde_json::from_slice::<Printed>(&stdout) {
            Ok(Printed::Unreadable(u)) => Notice::Unreadable(format!(
                "parser {shown}: {}",
                clean_text(&u.unreadable, 300)
            )),
            Ok(Printed::Maintenance(m)) => match maintenance(provider, *m, date) {
                Ok(m) => Notice::Read(m),
                Err(e) => Notice::Unreadable(format!("parser {shown}: {e}")),
            },
            Err(e) => Notice::Unreadable(format!(
                "parser {shown} printed no maintenance: {}",
                clean_text(&e.to_string(), 200)
            )),
        },
        Err(reason) => Notice::Unreadable(reason),
    }
}

/// Runs the parser; its standard output, or why it failed.
fn run(
    provider: &Provider,
    argv: &[String],
    raw: &[u8],
    budget: Duration,
) -> Result<Vec<u8>, String> {
    let (program, args) = argv.split_first().ok_or("the parser command is empty")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("HELPDESK_PROVIDER", &provider.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &provider.dir {
        command.current_dir(dir);
    }
    for name in ["PATH", "LANG", "LC_ALL", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("parser {program} cannot start: {e}"))?;
    let group = child.id();
    let stdin = child.stdin.take();
    let input = raw.to_vec();
    // From a thread: a parser that reads nothing must not block us.
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let out = child.stdout.take().map(|s| reader(s, MAX_STDOUT));
    let err = child.stderr.take().map(|s| reader(s, MAX_STDERR));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > budget => {
                kill_group(group);
                let _ = child.wait();
                return Err(format!(
                    "parser {program} took longer than {}",
                    humantime::format_duration(budget)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("parser {program}: {e}")),
        }
    };
    // Whatever it left running goes with it.
    kill_group(group);
    let _ = writer.join();
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    if !status.success() {
        let last = String::from_utf8_lossy(&stderr)
            .lines()
            .rev()
            .map(|l| clean_text(l, 200))
            .find(|l| !l.is_empty())
            .unwrap_or_else(|| "(nothing on stderr)".into());
        let code = status
            .code()
            .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
        return Err(format!("parser {program} exited with {code}: {last}"));
    }
    Ok(stdout)
}

/// Reads at most `max` bytes of `stream`, then drains the rest.
fn reader(
    stream: impl std::io::Read + Send + 'static,
    max: u64,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut stream = stream;
        let _ = (&mut stream).take(max).read_to_end(&mut kept);
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
        kept
    })
}

fn kill_group(group: u32) {
    if let Some(pid) = i32::try_from(group)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn maintenance(
    provider: &Provider,
    raw: RawMaintenance,
    date: Option<DateTime<Utc>>,
) -> Result<Maintenance, String> {
    let time = |what: &str, text: &str| -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                format!(
                    "{what} {:?} is not an RFC 3339 time with an offset",
                    clean_text(text, 40)
                )
            })
    };
    let start = time("start", &raw.start)?;
    let end = time("end", &raw.end)?;
    if end < start {
        return Err("its end is before its start".into());
    }
    if raw.circuits.len() > MAX_CIRCUITS {
        return Err(format!("it names more than {MAX_CIRCUITS} circuits"));
    }
    let mut circuits = Vec::with_capacity(raw.circuits.len());
    for c in raw.circuits {
        if let Some(id) = clean_id("circuit id", &c.id)? {
            let impact = c
                .impact
                .map(|i| clean_text(&i, 40))
                .filter(|i| !i.is_empty());
            circuits.push(Circuit {
                id,
                impact: impact.unwrap_or_else(|| "UNKNOWN".into()),
            });
        }
    }
    let optional = |what: &str, text: Option<String>| -> Result<Option<String>, String> {
        Ok(text.map(|t| clean_id(what, &t)).transpose()?.flatten())
    };
    Ok(Maintenance {
        provider: provider.name.clone(),
        maintenance_id: clean_id("maintenance_id", &raw.maintenance_id)?
            .ok_or("its maintenance_id is empty")?,
        account: optional("account", raw.account)?,
        status: Status::parse(&raw.status).ok_or_else(|| {
            format!(
                "status {:?} is none of BCOP's statuses",
                clean_text(&raw.status, 40)
            )
        })?,
        sequence: match raw.sequence {
            Some(n) if n < 0 => return Err("its sequence is negative".into()),
            other => other,
        },
        stamp: match raw.stamp {
            Some(text) => Some(time("stamp", &text)?),
            None => date,
        },
        start,
        end,
        summary: clean_text(&raw.summary.unwrap_or_default(), MAX_SUMMARY),
        organizer: optional("organizer", raw.organizer)?,
        circuits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::maintenance::Parser;

    fn provider() -> Provider {
        Provider {
            name: "acme".into(),
            senders: vec!["noc@acme.example".into()],
            parser: Parser::Ical,
            timezone: None,
            dir: None,
        }
    }

    fn python(script: &str, raw: &[u8], budget: Duration) -> Notice {
        let argv = vec!["python3".to_owned(), "-c".to_owned(), script.to_owned()];
        read_within(&provider(), &argv, raw, None, budget)
    }

    fn reason(notice: Notice) -> String {
        match notice {
            Notice::Unreadable(r) => r,
            Notice::Read(m) => panic!("read {m:?}"),
        }
    }

    #[test]
    fn a_parsers_json_is_a_maintenance_in_utc() {
        let script = "import json,os,sys; sys.stdin.read(); print(json.dumps({'maintenance_id': 'A-1', 'status': 'confirmed', 'start': '2027-03-01T01:00:00-05:00', 'end': '2027-03-01T03:00:00-05:00', 'summary': os.environ['HELPDESK_PROVIDER'] + '\\u202e work', 'circuits': [{'id': 'C7', 'impact': 'DEGRADED'}], 'provider': 'zayo'}))";
        let Notice::Read(m) = python(script, b"mail", BUDGET) else {
            panic!()
        };
        assert_eq!(
            m.provider, "acme",
            "the configured provider, not the printed one"
        );
        assert_eq!(
            crate::maintenance::format_time(&m.start),
            "2027-03-01T06:00:00Z"
        );
        assert_eq!(m.status, Status::Confirmed);
        assert_eq!(m.summary, "acme work");
        assert_eq!(m.circuits[0].id, "C7");
        assert!(std::env::var_os("HELPDESK_PROVIDER").is_none());
    }

    #[test]
    fn every_way_a_parser_fails_is_a_reason() {
        let said = reason(python(
            "import sys; print('oops', file=sys.stderr); print('no \\x1b[31mformat', file=sys.stderr); sys.exit(2)",
            b"",
            BUDGET,
        ));
        assert!(
            said.contains("exited with status 2: no [31mformat"),
            "{said}"
        );
        let said = reason(python(
            "print('{\"maintenance_id\": \"A\", \"status\": \"CONFIRMED\", \"start\": \"2027-03-01T01:00:00Z\", \"end\": \"2027-03-01T03:00:00Z\", \"colour\": 1}')",
            b"",
            BUDGET,
        ));
        assert!(said.contains("printed no maintenance"), "{said}");
        let said = reason(python(
            "print('{\"unreadable\": \"no Ticket line\"}')",
            b"",
            BUDGET,
        ));
        assert!(said.ends_with("no Ticket line"), "{said}");
        let said = reason(python(
            "import sys; sys.stdout.write('x' * (2 * 1024 * 1024))",
            b"",
            BUDGET,
        ));
        assert!(said.contains("printed no maintenance"), "{said}");
        // It reads nothing of a 5 MiB mail and still ends.
        let said = reason(python("print('{}')", &vec![b'a'; 5 * 1024 * 1024], BUDGET));
        assert!(said.contains("printed no maintenance"), "{said}");
        let said = reason(read_within(
            &provider(),
            &["/nonexistent/parser".into()],
            b"",
            None,
            BUDGET,
        ));
        assert!(said.contains("cannot start"), "{said}");
    }

    #[test]
    fn a_parser_over_its_budget_is_stopped_with_its_children() {
        let marker = format!("30.{}", std::process::id());
        let script = format!(
            "import subprocess,time; subprocess.Popen(['sleep', '{marker}']); time.sleep(30)"
        );
        let started = Instant::now();
        let said = reason(python(&script, b"", Duration::from_secs(1)));
        assert!(said.contains("took longer than 1s"), "{said}");
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(200));
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let running = String::from_utf8_lossy(&ps.stdout).into_owned();
        assert!(!running.contains(&script), "the parser is still running");
        assert!(
            !running.contains(&format!("sleep {marker}")),
            "its child is still running"
        );
    }
}
