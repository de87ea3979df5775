//! Issue 18: provider maintenance notices, through the built binary and
//! the real `ansible-playbook`. Every fixture in
//! tests/fixtures/maintenance/ reads (`parse --format json`) as the
//! `maintenance` object written by hand beside it; a new notice runs
//! `scheduled`, an update replaces it, an older one changes nothing, a
//! cancellation runs `cancelled`; `worker` runs `started` and `ended` at
//! their times, once each, across a restart, and never for a cancelled
//! maintenance; an unreadable notice reaches `unreadable` by mail; a
//! command parser is a program whose JSON is taken; a provider's address
//! that is not proven makes no notice.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, exec, repo, wait_for};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/maintenance")
}

fn fixture(name: &str) -> Vec<u8> {
    fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The providers the fixtures come from, as config.yaml lists them.
fn providers_yaml() -> String {
    let text = fs::read_to_string(fixtures().join("providers.yaml")).unwrap();
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// A playbook that records each run as a JSON file in `events`, named by
/// the event and the time, holding what helpdesk passed.
fn recording_playbook(events: &Path) -> String {
    format!(
        r#"- name: Record the maintenance event
  hosts: all
  gather_facts: false
  tasks:
    - name: Write what helpdesk passed
      ansible.builtin.copy:
        dest: "{}/{{{{ maintenance_event }}}}-{{{{ lookup('ansible.builtin.pipe', 'date +%s%N') }}}}.json"
        content: "{{{{ {{'event': maintenance_event, 'provider': maintenance_provider, 'id': maintenance_id, 'status': maintenance_status, 'sequence': maintenance_sequence, 'start': maintenance_start, 'end': maintenance_end, 'summary': maintenance_summary, 'circuit_ids': maintenance_circuit_ids, 'circuits': maintenance_circuits | from_json}} | to_json }}}}"
        mode: "0600"
"#,
        events.display()
    )
}

/// A desk whose four maintenance playbooks record into `events/`, with
/// the fixtures' providers and `extra` config lines; replies (the
/// unreadable forward) go to `server`.
fn desk(server: &SmtpServer, lead: &str, extra_providers: &str) -> (Helpdesk, PathBuf) {
    let desk = Helpdesk::from_defaults();
    let events = desk.path().join("events");
    fs::create_dir_all(&events).unwrap();
    let playbook = recording_playbook(&events);
    let mut desk = desk;
    for event in ["scheduled", "cancelled", "started", "ended"] {
        desk = desk.file(&format!("playbooks/maintenance_{event}.yaml"), &playbook);
    }
    let desk = desk
        .adding(&format!(
            "maintenance:\n  providers:\n{}{extra_providers}  playbooks:\n    scheduled: playbooks/maintenance_scheduled.yaml\n    cancelled: playbooks/maintenance_cancelled.yaml\n    started: playbooks/maintenance_started.yaml\n    ended: playbooks/maintenance_ended.yaml\n  lead: {lead}\n  unreadable: [noc-team@example.com]\n",
            providers_yaml()
        ))
        .replying_to(server);
    (desk, events)
}

/// The recorded runs, oldest first: (event, what it got).
fn events(dir: &Path) -> Vec<(String, Value, SystemTime)> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort_by_key(|p| {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        stem.rsplit('-')
            .next()
            .unwrap_or("")
            .parse::<u128>()
            .unwrap_or(0)
    });
    names
        .iter()
        .map(|p| {
            let text = fs::read_to_string(p).unwrap();
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let modified = fs::metadata(p).unwrap().modified().unwrap();
            (value["event"].as_str().unwrap().to_owned(), value, modified)
        })
        .collect()
}

fn event_names(dir: &Path) -> Vec<String> {
    events(dir).into_iter().map(|(e, _, _)| e).collect()
}

fn maintenances(desk: &Helpdesk, all: bool) -> Vec<Value> {
    let mut args = vec!["maintenances", "--format", "json"];
    if all {
        args.push("--all");
    }
    let out = exec(desk.command(&args), b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str::<Vec<Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn run_ok(desk: &Helpdesk, mail: &[u8]) {
    let out = desk.run(mail);
    assert_eq!(out.code, 0, "run failed: {}", out.stderr);
}

/// Every fixture through `parse --format json` on a desk that lists the
/// fixtures' providers: the `maintenance` object is exactly the one
/// written by hand next to it (or the reason says what the JSON says),
/// in LF and in CRLF.
#[test]
fn issue_18_every_fixture_parses_to_its_expected_maintenance_object() {
    let server = SmtpServer::plain();
    let (desk, _) = desk(&server, "15m", "");
    let mut seen = 0;
    let mut names: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    for path in &names {
        let expected: Value =
            serde_json::from_str(&fs::read_to_string(path.with_extension("json")).unwrap())
                .unwrap();
        let raw = fs::read(path).unwrap();
        let lf: Vec<u8> = String::from_utf8_lossy(&raw)
            .replace("\r\n", "\n")
            .into_bytes();
        let crlf: Vec<u8> = String::from_utf8_lossy(&lf)
            .replace('\n', "\r\n")
            .into_bytes();
        for (form, mail) in [("LF", &lf), ("CRLF", &crlf)] {
            let parsed = desk.parse(mail);
            let shown = format!("{} ({form})", path.display());
            assert_eq!(parsed["request_type"], "maintenance", "{shown}: {parsed}");
            match (&expected["maintenance"], &expected["unreadable"]) {
                (Value::Object(_), _) => {
                    assert_eq!(parsed["maintenance"], expected["maintenance"], "{shown}");
                    assert!(
                        parsed["maintenance_playbook"].is_string(),
                        "{shown}: {parsed}"
                    );
                    // The request's fields say what the notice does, not
                    // what a request without keywords would.
                    assert_eq!(parsed["vars"], parsed["maintenance_vars"], "{shown}");
                    assert_eq!(
                        parsed["vars"]["maintenance_id"], expected["maintenance"]["maintenance_id"],
                        "{shown}"
                    );
                    assert_eq!(parsed["playbook"], parsed["maintenance_playbook"]);
                    let reason = parsed["reason"].as_str().unwrap();
                    assert!(
                        reason.starts_with("a maintenance notice from provider "),
                        "{shown}: {reason}"
                    );
                }
                (_, Value::String(reason)) => {
                    let said = parsed["unreadable"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{shown}: {parsed}"));
                    assert!(
                        said.contains(reason.as_str()),
                        "{shown}: {said:?} lacks {reason:?}"
                    );
                    assert!(
                        parsed["reason"].as_str().unwrap().ends_with(said),
                        "{shown}: {parsed}"
                    );
                    assert_eq!(parsed["forward_to"], json!(["noc-team@example.com"]));
                    assert_eq!(parsed["vars"], json!({}), "{shown}");
                    assert!(parsed["playbook"].is_null(), "{shown}");
                }
                _ => panic!("{}: neither maintenance nor unreadable", path.display()),
            }
        }
        seen += 1;
    }
    assert!(
        seen >= 14,
        "only {seen} fixtures in {}",
        fixtures().display()
    );
}

/// A new notice runs `scheduled`; a higher SEQUENCE replaces it (and runs
/// `scheduled` again with the new times); an older one arriving late
/// changes nothing and runs nothing; the cancellation runs `cancelled`,
/// and the maintenance is no longer upcoming.
#[test]
fn issue_18_new_update_older_and_cancellation_through_real_ansible() {
    let server = SmtpServer::plain();
    let (desk, events_dir) = desk(&server, "15m", "");
    let expected = |name: &str| -> Value {
        let text = fs::read_to_string(fixtures().join(name)).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["maintenance"].clone()
    };
    let first = expected("zayo_scheduled.json");
    let second = expected("zayo_rescheduled.json");
    assert_eq!(first["maintenance_id"], second["maintenance_id"]);
    assert_ne!(
        first["start"], second["start"],
        "the update must move the times"
    );

    run_ok(&desk, &fixture("zayo_scheduled.eml"));
    let seen = events(&events_dir);
    assert_eq!(event_names(&events_dir), ["scheduled"]);
    assert_eq!(seen[0].1["id"], first["maintenance_id"]);
    assert_eq!(seen[0].1["start"], first["start"]);
    let ids: Vec<&str> = first["circuits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen[0].1["circuit_ids"], ids.join(","));
    assert_eq!(
        seen[0].1["circuits"], first["circuits"],
        "from_json gives the list back"
    );
    let listed = maintenances(&desk, false);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["start"], first["start"]);

    run_ok(&desk, &fixture("zayo_rescheduled.eml"));
    assert_eq!(event_names(&events_dir), ["scheduled", "scheduled"]);
    assert_eq!(events(&events_dir)[1].1["start"], second["start"]);
    let listed = maintenances(&desk, false);
    assert_eq!(
        listed.len(),
        1,
        "an update replaces, never adds: {listed:?}"
    );
    assert_eq!(listed[0]["start"], second["start"]);
    assert_eq!(listed[0]["sequence"], second["sequence"]);

    run_ok(&desk, &fixture("zayo_older.eml"));
    assert_eq!(
        event_names(&events_dir),
        ["scheduled", "scheduled"],
        "the older notice ran something"
    );
    let listed = maintenances(&desk, false);
    assert_eq!(
        listed[0]["start"], second["start"],
        "the older notice changed the maintenance"
    );
    let rows = desk.log_rows();
    assert_eq!(rows[0]["outcome"], "ignored", "{}", rows[0]);
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("older or equal"),
        "{}",
        rows[0]
    );

    run_ok(&desk, &fixture("zayo_cancelled.eml"));
    assert_eq!(
        event_names(&events_dir),
        ["scheduled", "scheduled", "cancelled"]
    );
    assert!(
        maintenances(&desk, false).is_empty(),
        "a cancelled maintenance is not upcoming"
    );
    let all = maintenances(&desk, true);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"], "CANCELLED");
    let rows = desk.log_rows();
    assert!(
        rows.iter().all(|r| r["request_type"] == "maintenance"),
        "{rows:?}"
    );
    assert!(server.received().is_empty(), "a notice is never answered");
    let metrics = fs::read_to_string(desk.path().join("state/metrics.prom")).unwrap();
    assert!(
        metrics.contains("helpdesk_maintenances{status=\"CANCELLED\"} 1"),
        "{metrics}"
    );
}

/// A BCOP notice from noc@gen.example for maintenance `id`, from `start`
/// to `end` (seconds from now), with `status`.
fn generated(id: &str, sequence: u32, status: &str, start: i64, end: i64) -> Vec<u8> {
    let at = |offset: i64| {
        let when = chrono::Utc::now() + chrono::Duration::seconds(offset);
        when.format("%Y%m%dT%H%M%SZ").to_string()
    };
    format!(
        "From: NOC <noc@gen.example>\r\nTo: helpdesk@example.com\r\nSubject: Planned work {id}\r\nMessage-ID: <{id}-{sequence}@gen.example>\r\nDate: Thu, 3 Dec 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//gen//maint//EN\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\nUID:{id}@gen.example\r\nDTSTAMP:{stamp}\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSEQUENCE:{sequence}\r\nSUMMARY:Fibre work\r\nX-MAINTNOTE-PROVIDER:gen.example\r\nX-MAINTNOTE-ACCOUNT:acct-1\r\nX-MAINTNOTE-MAINTENANCE-ID:{id}\r\nX-MAINTNOTE-OBJECT-ID;X-MAINTNOTE-OBJECT-IMPACT=OUTAGE:GEN-CIRCUIT-1\r\nX-MAINTNOTE-IMPACT:OUTAGE\r\nX-MAINTNOTE-STATUS:{status}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        stamp = at(0),
        start = at(start),
        end = at(end),
    )
    .into_bytes()
}

const GEN_PROVIDER: &str = "    - name: gen\n      senders: [noc@gen.example]\n";

fn worker(desk: &Helpdesk) -> Child {
    desk.command(&["worker", "--interval", "200ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `worker` runs `started` (here with no lead) once the start time has
/// come and `ended` once the end time has, once each, though it is killed
/// between them and started again; a cancelled maintenance runs neither.
#[test]
fn issue_18_worker_runs_started_and_ended_at_their_times_once_each_across_a_restart() {
    let server = SmtpServer::plain();
    let (desk, events_dir) = desk(&server, "0s", GEN_PROVIDER);
    // The cancelled one first: its runs take time, and GEN-1's times are
    // counted from just before its own delivery.
    run_ok(&desk, &generated("GEN-2", 1, "CONFIRMED", 15, 30));
    run_ok(&desk, &generated("GEN-2", 2, "CANCELLED", 15, 30));
    let began = SystemTime::now();
    // Offsets leave room for a loaded machine: GEN-1's own `scheduled`
    // run must be over before its start comes.
    run_ok(&desk, &generated("GEN-1", 1, "CONFIRMED", 15, 30));
    assert_eq!(
        event_names(&events_dir),
        ["scheduled", "cancelled", "scheduled"]
    );
    // Whole seconds: the notice's times are.
    let started_at = began + Duration::from_secs(14);
    let ended_at = began + Duration::from_secs(29);
    assert!(
        SystemTime::now() < started_at,
        "GEN-1's scheduled run took longer than its start offset; the timing checks below would mean nothing"
    );

    let mut first = worker(&desk);
    wait_for(
        "started to run and be journaled",
        Duration::from_secs(60),
        || {
            maintenances(&desk, false)
                .iter()
                .any(|m| m["maintenance_id"] == "GEN-1" && m["started_outcome"].is_string())
        },
    );
    // Killed, as a crash or a reboot would: the next worker must not run
    // `started` again.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = worker(&desk);
    wait_for("ended to run", Duration::from_secs(60), || {
        event_names(&events_dir).contains(&"ended".to_owned())
    });
    std::thread::sleep(Duration::from_secs(2));
    second.kill().unwrap();
    second.wait().unwrap();

    let seen = events(&events_dir);
    let names: Vec<&str> = seen.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(
        names,
        ["scheduled", "cancelled", "scheduled", "started", "ended"]
    );
    for (event, value, at) in &seen[3..] {
        assert_eq!(value["id"], "GEN-1", "{event} ran for {value}");
        let due = if event == "started" {
            started_at
        } else {
            ended_at
        };
        assert!(*at >= due, "{event} ran before its time");
        assert!(
            at.duration_since(due).unwrap() < Duration::from_secs(15),
            "{event} ran long after its time"
        );
    }
    let all = maintenances(&desk, true);
    let gen1 = all.iter().find(|m| m["maintenance_id"] == "GEN-1").unwrap();
    assert!(
        gen1["started_outcome"]
            .as_str()
            .unwrap()
            .starts_with("done"),
        "{gen1}"
    );
    assert!(
        gen1["ended_outcome"].as_str().unwrap().starts_with("done"),
        "{gen1}"
    );
}

/// A maintenance whose start passed while no worker ran (it has not ended
/// yet) gets `started` on the next pass.
#[test]
fn issue_18_a_start_missed_while_the_worker_was_down_runs_on_the_next_pass() {
    let server = SmtpServer::plain();
    let (desk, events_dir) = desk(&server, "0s", GEN_PROVIDER);
    run_ok(&desk, &generated("GEN-LATE", 1, "CONFIRMED", -60, 120));
    let mut worker = worker(&desk);
    wait_for("started to run", Duration::from_secs(20), || {
        event_names(&events_dir).contains(&"started".to_owned())
    });
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(event_names(&events_dir), ["scheduled", "started"]);
    let listed = maintenances(&desk, false);
    assert_eq!(
        listed.len(),
        1,
        "an ongoing maintenance is listed: {listed:?}"
    );
}

/// A provider's notice that no parser can read is journaled with the
/// reason and forwarded, as it arrived, to `maintenance.unreadable`.
#[test]
fn issue_18_an_unreadable_notice_reaches_unreadable_with_the_reason() {
    let server = SmtpServer::plain();
    let (desk, events_dir) = desk(&server, "15m", "");
    let broken = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .find(|p| {
            let v: Value = serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap();
            v["unreadable"].is_string()
        })
        .expect("the corpus has an unreadable notice");
    let expected: Value = serde_json::from_str(&fs::read_to_string(&broken).unwrap()).unwrap();
    let raw = fs::read(broken.with_extension("eml")).unwrap();
    run_ok(&desk, &raw);
    assert!(
        event_names(&events_dir).is_empty(),
        "an unreadable notice ran a playbook"
    );
    let rows = desk.log_rows();
    assert_eq!(rows[0]["outcome"], "unreadable", "{}", rows[0]);
    let reason = expected["unreadable"].as_str().unwrap();
    assert!(
        rows[0]["reason"].as_str().unwrap().contains(reason),
        "{}",
        rows[0]
    );
    let forward = server.only();
    assert_eq!(
        forward.envelope["rcpt_tos"],
        serde_json::json!(["noc-team@example.com"])
    );
    assert!(
        forward
            .header("Subject")
            .unwrap()
            .contains("Unreadable maintenance notice")
    );
    assert!(forward.raw.contains(reason), "the forward lacks the reason");
    assert!(forward.raw.contains("message/rfc822") || forward.raw.contains("notice.eml"));
    let original_id = String::from_utf8_lossy(&raw)
        .lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID: ")
                .or_else(|| l.strip_prefix("Message-Id: "))
        })
        .map(|s| s.trim().to_owned())
        .unwrap();
    assert!(
        forward.raw.contains(&original_id),
        "the notice is not attached"
    );
}

/// A provider whose notices a program reads: the mail on its stdin, the
/// maintenance as JSON on its stdout, run through to `scheduled`.
#[test]
fn issue_18_a_command_parser_reads_a_providers_own_format() {
    let server = SmtpServer::plain();
    let parser = "import json, re, sys\nmail = sys.stdin.read()\nm = re.search(r'Ticket (\\S+) from (\\S+) to (\\S+)', mail)\nif not m:\n    print(json.dumps({'unreadable': 'no Ticket line'}))\n    sys.exit(0)\nprint(json.dumps({'maintenance_id': m.group(1), 'status': 'CONFIRMED', 'start': m.group(2), 'end': m.group(3), 'sequence': 1, 'summary': 'Work by ' + __import__('os').environ['HELPDESK_PROVIDER'], 'circuits': [{'id': 'ACME-7', 'impact': 'DEGRADED'}]}))\n";
    let providers = "    - name: acme\n      senders: [noc@acme.example]\n      parser: [python3, parsers/acme.py]\n";
    let (desk, events_dir) = desk(&server, "15m", providers);
    let desk = desk.file("parsers/acme.py", parser);
    let mail = b"From: noc@acme.example\r\nTo: helpdesk@example.com\r\nSubject: Planned work\r\nMessage-ID: <acme-1@acme.example>\r\nDate: Thu, 3 Dec 2026 06:00:00 +0000\r\n\r\nTicket ACME-42 from 2027-03-01T01:00:00-05:00 to 2027-03-01T03:00:00-05:00\r\n";
    let parsed = desk.parse(mail);
    assert_eq!(
        parsed["maintenance"]["maintenance_id"], "ACME-42",
        "{parsed}"
    );
    assert_eq!(parsed["maintenance"]["start"], "2027-03-01T06:00:00Z");
    assert_eq!(parsed["maintenance"]["summary"], "Work by acme");
    run_ok(&desk, mail);
    let seen = events(&events_dir);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1["id"], "ACME-42");
    assert_eq!(seen[0].1["end"], "2027-03-01T08:00:00Z");
    let other = b"From: noc@acme.example\r\nTo: helpdesk@example.com\r\nSubject: Hello\r\nMessage-ID: <acme-2@acme.example>\r\n\r\nNothing here\r\n";
    run_ok(&desk, other);
    assert_eq!(desk.log_rows()[0]["outcome"], "unreadable");
    assert!(
        desk.log_rows()[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no Ticket line")
    );
}

/// Mail that only claims a provider's address (no proof) is no notice:
/// nothing is recorded or run.
#[test]
fn issue_18_an_unproven_providers_address_makes_no_notice() {
    let server = SmtpServer::plain();
    let (desk, events_dir) = desk(&server, "15m", "");
    let desk = desk.trusting(
        "authentication: {authserv_id: [mx.example.com], position: above, require: dmarc}\naccess:\n  - {requests: ['*'], senders: ['*']}\n",
    );
    run_ok(&desk, &fixture("zayo_scheduled.eml"));
    assert!(event_names(&events_dir).is_empty());
    assert!(maintenances(&desk, true).is_empty());
    assert_eq!(desk.log_rows()[0]["outcome"], "unauthenticated");
}

/// `parse --format text` on a notice shows the notice, what would run and
/// that no reply goes out, never a request's reply to the provider; an
/// unreadable one says why and who gets it.
#[test]
fn issue_18_parse_text_shows_a_notice_not_a_request() {
    let server = SmtpServer::plain();
    let (desk, _) = desk(&server, "15m", "");
    let text = |name: &str| {
        let out = exec(desk.command(&["parse", "--format", "text"]), &fixture(name));
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let read = text("zayo_scheduled.eml");
    assert!(read.starts_with("maintenance notice\n"), "{read}");
    assert!(
        read.contains("  runs scheduled when newer than the journal's notice:\n")
            && read.contains("playbooks/maintenance_scheduled.yaml\n"),
        "{read}"
    );
    assert!(
        read.contains("reply         none: a provider's notice gets no reply"),
        "{read}"
    );
    for request_line in ["request type", "We could not tell", "vars\n"] {
        assert!(!read.contains(request_line), "{request_line:?} in {read}");
    }
    let unreadable = text("zayo_broken_calendar.eml");
    assert!(
        unreadable.starts_with("maintenance notice, unreadable: ")
            && unreadable.contains("DTSTART")
            && unreadable.contains("forwarded to noc-team@example.com with the reason"),
        "{unreadable}"
    );
}
