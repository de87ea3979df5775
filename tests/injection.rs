//! Issue 11: no value from a mail is ever code. A generated corpus of
//! hostile and tricky strings (every template syntax ansible-core 2.19
//! knows, override headers, unicode look-alikes, YAML specials, numbers
//! as strings, shell and option syntax) is placed in every kind of value
//! and run through the real `ansible-playbook` with a careless playbook
//! that prints each variable, uses it in a module argument and in a
//! `template` task, and writes it out as JSON. Each string that tries to
//! run something tries to create its own marker file.
//!
//! Passing means: no marker exists (0 executed), and every value arrives
//! byte-identical and as a string (0 altered). A control run hands the
//! same corpus over as plain JSON and shows that the payloads are live.
//! Issue 18: the same corpus in every text a maintenance notice carries.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::support::{
    Helpdesk, LOCAL_INVENTORY, ansible_playbook, base64, exec, fixture, unique_id,
};

/// Separates the values in the careless playbook's output; no corpus
/// string contains it.
const SEP: char = '\u{241E}';

/// One generated string, and whether it tries to run a command.
#[derive(Debug, Clone)]
struct Hostile {
    text: String,
    /// The marker file this string's payload would create.
    marker: Option<PathBuf>,
}

/// Expressions that run a command, in every spelling of the lookup.
const EXPRESSIONS: [fn(&str) -> String; 7] = [
    |c| format!("lookup('pipe', '{c}')"),
    |c| format!("lookup(\"ansible.builtin.pipe\", \"{c}\")"),
    |c| format!("query('pipe', '{c}')"),
    |c| format!("q('ansible.builtin.pipe','{c}')"),
    |c| format!("'x' ~ lookup('pipe', '{c}')"),
    |c| format!("lookup('pipe', '{c}') | default('')"),
    |c| format!("[lookup('pipe', '{c}')] | first"),
];

/// Every way Jinja2 and Ansible turn text into a template.
const SYNTAXES: [fn(&str) -> String; 12] = [
    |e| format!("{{{{ {e} }}}}"),
    |e| format!("{{{{{e}}}}}"),
    |e| format!("{{{{- {e} -}}}}"),
    |e| format!("{{% set x = {e} %}}{{{{ x }}}}"),
    |e| format!("{{%- if {e} -%}}{{%- endif -%}}"),
    |e| format!("{{% for x in [{e}] %}}{{{{ x }}}}{{% endfor %}}"),
    |e| format!("{{# comment #}}{{{{ {e} }}}}"),
    |e| format!("{{% raw %}}{{% endraw %}}{{{{ {e} }}}}"),
    // Override headers: other delimiters, then the expression in them.
    |e| format!("#jinja2:variable_start_string:'[[', variable_end_string:']]'\n[[ {e} ]]"),
    |e| format!("#jinja2: variable_start_string: \"<<\", variable_end_string: \">>\" << {e} >>"),
    |e| format!("#jinja2:block_start_string:'<%',block_end_string:'%>'\n<% if {e} %><% endif %>"),
    |e| format!("#jinja2:variable_start_string:'((' , variable_end_string:'))' (( {e} ))"),
];

/// Where a template stands in the value: alone, in words, in an encoded word.
const WRAPPERS: [fn(&str) -> String; 3] = [
    |s| s.to_owned(),
    |s| format!("please {s} thanks"),
    |s| format!("=?utf-8?q?{s}?="),
];

/// Ansible's own markers for unsafe and vaulted values, and shells.
const OTHERS: [fn(&str) -> String; 8] = [
    |c| format!("{{\"__ansible_unsafe\": \"{{{{ lookup('pipe', '{c}') }}}}\"}}"),
    |c| format!("$({c})"),
    |c| format!("`{c}`"),
    |c| format!("; {c}"),
    |c| format!("| {c}"),
    |c| format!("&& {c} &&"),
    |c| format!("!!python/object/apply:os.system ['{c}']"),
    |c| format!("{{{{ ''.__class__.__mro__[1].__subclasses__() }}}}{{{{ lookup('pipe','{c}') }}}}"),
];

/// The corpus. `markers` is the folder the payloads write into; `mail`
/// leaves out what a mail cannot carry as a captured value (line breaks).
fn corpus(markers: &Path, mail: bool) -> Vec<Hostile> {
    let mut out: Vec<Hostile> = Vec::new();
    let mut n = 0;
    let mut payload = |out: &mut Vec<Hostile>, make: &dyn Fn(&str) -> String| {
        n += 1;
        let marker = markers.join(format!("pwned-{n}"));
        let command = format!("touch {}", marker.display());
        out.push(Hostile {
            text: make(&command),
            marker: Some(marker),
        });
    };
    for syntax in SYNTAXES {
        for expression in EXPRESSIONS {
            for wrap in WRAPPERS {
                payload(&mut out, &|c| wrap(&syntax(&expression(c))));
            }
        }
    }
    for other in OTHERS {
        payload(&mut out, &other);
    }
    // Strings that are not attacks but must arrive exactly: templates that
    // would compute something, look-alikes, YAML and Ansible specials (in
    // tests/fixtures/injection/inert_strings.json), and a long one.
    let inert: Vec<String> = serde_json::from_slice(&fixture("injection/inert_strings.json"))
        .unwrap_or_else(|e| panic!("inert_strings.json: {e}"));
    out.extend(
        inert
            .into_iter()
            .chain(["ü".repeat(200)])
            .map(|text| Hostile { text, marker: None }),
    );
    if mail {
        // A mail's captured values are single lines without quotes that a
        // label would stop at; header text never has line breaks.
        out.retain(|h| !h.text.contains(['\n', '"', '\u{2028}']));
    }
    assert!(out.iter().all(|h| !h.text.contains(SEP)));
    out
}

/// The careless playbook: every variable printed, used in a module
/// argument and in a template, and written out as JSON to `out`.
/// With `defaulted`, a variable the mail did not fill is `''`.
fn careless_playbook(dir: &Path, names: &[String], out: &Path, defaulted: bool) -> PathBuf {
    let names: Vec<String> = names
        .iter()
        .map(|n| {
            if defaulted {
                format!("{n} | default('')")
            } else {
                n.clone()
            }
        })
        .collect();
    let joined: Vec<String> = names.iter().map(|n| format!("{{{{ {n} }}}}")).collect();
    let joined = joined.join(&SEP.to_string());
    let list = format!("{{{{ [{}] | to_json }}}}", names.join(", "));
    fs::write(dir.join("careless.j2"), &joined).unwrap();
    let playbook = json!([{
        "name": "A careless playbook",
        "hosts": "all",
        "gather_facts": false,
        "tasks": [
            {"name": "Print them", "ansible.builtin.debug": {"msg": joined}},
            {"name": "Use them in a module argument",
             "ansible.builtin.copy": {"content": joined, "dest": out.join("argument.txt").display().to_string(), "mode": "0600"}},
            {"name": "Use them in a template",
             "ansible.builtin.template": {"src": dir.join("careless.j2").display().to_string(), "dest": out.join("template.txt").display().to_string(), "mode": "0600"}},
            {"name": "Write them as JSON",
             "ansible.builtin.copy": {"content": list, "dest": out.join("values.json").display().to_string(), "mode": "0600"}},
        ],
    }]);
    let path = dir.join("careless.yaml");
    fs::write(&path, serde_json::to_string_pretty(&playbook).unwrap()).unwrap();
    path
}

/// What the careless playbook wrote: the values as the argument, the
/// template and the JSON list saw them. `None` when it did not write.
fn arrived(out: &Path, count: usize) -> Option<[Vec<Value>; 3]> {
    let split = |file: &str| -> Option<Vec<Value>> {
        let text = fs::read_to_string(out.join(file)).ok()?;
        Some(
            text.split(SEP)
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )
    };
    let json: Vec<Value> =
        serde_json::from_str(&fs::read_to_string(out.join("values.json")).ok()?).ok()?;
    let all = [split("argument.txt")?, split("template.txt")?, json];
    assert!(all.iter().all(|a| a.len() == count), "{all:?}");
    Some(all)
}

fn fired(corpus: &[Hostile]) -> Vec<&str> {
    corpus
        .iter()
        .filter(|h| h.marker.as_ref().is_some_and(|m| m.exists()))
        .map(|h| h.text.as_str())
        .collect()
}

fn run_ansible(dir: &Path, playbook: &Path, vars_file: &Path) -> std::process::Output {
    Command::new(ansible_playbook())
        .arg("-i")
        .arg(dir.join("inventory"))
        .arg("--extra-vars")
        .arg(format!("@{}", vars_file.display()))
        .arg(playbook)
        .current_dir(dir)
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn issue_11_every_hostile_string_reaches_ansible_verbatim_and_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let markers = dir.path().join("markers");
    let out = dir.path().join("out");
    fs::create_dir_all(&markers).unwrap();
    fs::create_dir_all(&out).unwrap();
    fs::write(dir.path().join("inventory"), LOCAL_INVENTORY).unwrap();
    let corpus = corpus(&markers, false);
    let names: Vec<String> = (0..corpus.len()).map(|i| format!("v{i}")).collect();
    let vars: Map<String, Value> = names
        .iter()
        .zip(&corpus)
        .map(|(n, h)| (n.clone(), Value::String(h.text.clone())))
        .collect();
    let playbook = careless_playbook(dir.path(), &names, &out, false);

    // The control: as plain JSON, the payloads are live on this Ansible.
    let json_file = dir.path().join("vars.json");
    fs::write(&json_file, Value::Object(vars.clone()).to_string()).unwrap();
    let _ = run_ansible(dir.path(), &playbook, &json_file);
    let live = fired(&corpus).len();
    assert!(
        fired(&corpus).iter().any(|t| t.starts_with("#jinja2:")),
        "no override header fired as JSON: the corpus lost its teeth"
    );
    assert!(live >= 100, "only {live} payloads fired as plain JSON");
    fs::remove_dir_all(&markers).unwrap();
    fs::create_dir_all(&markers).unwrap();
    for file in ["argument.txt", "template.txt", "values.json"] {
        let _ = fs::remove_file(out.join(file));
    }

    // helpdesk's vars file.
    let yaml_file = dir.path().join("vars.yaml");
    fs::write(&yaml_file, helpdesk::fuzzing::extra_vars_yaml(&vars)).unwrap();
    let result = run_ansible(dir.path(), &playbook, &yaml_file);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stdout)
    );
    let executed = fired(&corpus);
    let arrived = arrived(&out, corpus.len()).expect("the careless playbook wrote nothing");
    let expected: Vec<Value> = vars.values().cloned().collect();
    let mut altered = Vec::new();
    for (how, values) in ["module argument", "template", "JSON"].iter().zip(&arrived) {
        for (want, got) in expected.iter().zip(values) {
            if want != got {
                altered.push(format!("{how}: {want} arrived as {got}"));
            }
        }
    }
    eprintln!(
        "injection corpus through the vars file: {} strings ({} payloads live as JSON), {} placements, {} executed, {} altered",
        corpus.len(),
        live,
        corpus.len() * 4,
        executed.len(),
        altered.len()
    );
    assert_eq!(executed, Vec::<&str>::new(), "payloads ran");
    assert_eq!(altered, Vec::<String>::new());
}

/// A helpdesk folder whose one request type `careless` captures `count`
/// labels (`v0:` …) and runs the careless playbook.
fn careless_desk(count: usize) -> (Helpdesk, PathBuf) {
    let desk = Helpdesk::from_defaults();
    let keywords = fs::read_to_string(desk.path().join("keywords.txt")).unwrap();
    let labels: Vec<String> = (0..count).map(|i| format!("v{i}:")).collect();
    let mut names = vec!["subject".to_owned(), "message_id".to_owned()];
    names.extend((0..count).map(|i| format!("v{i}")));
    let out = desk.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let playbook = careless_playbook(desk.path(), &names, &out, true);
    let desk = desk
        .file("keywords.txt", &format!("*careless*\ncareless\n{keywords}"))
        .file(
            "phrasebooks/careless_phrases.txt",
            &format!("*fields*\n{}\n", labels.join(" ")),
        )
        .file("help_templates/careless_help.txt", "Careless.\n")
        .file(
            "playbooks/careless.yaml",
            &fs::read_to_string(playbook).unwrap(),
        );
    (desk, out)
}

/// RFC 2047 for a subject: raw UTF-8, base64 or Q encoding.
fn encoded_subject(text: &str, style: usize) -> String {
    match style % 3 {
        0 => text.to_owned(),
        1 => format!("=?utf-8?B?{}?=", base64(text)),
        _ => {
            let q: String = text
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(b).to_string(),
                    b' ' => "_".to_owned(),
                    _ => format!("={b:02X}"),
                })
                .collect();
            format!("=?utf-8?Q?{q}?=")
        }
    }
}

/// Hostile values in one mail.
const PER_MAIL: usize = 8;

/// What one worker saw: values placed and compared, values captured exactly
/// as sent, playbook runs, and every value that arrived altered.
#[derive(Default)]
struct Tally {
    placements: usize,
    exact: usize,
    ran: usize,
    altered: Vec<String>,
}

/// Mail number `index`: a hostile subject (RFC 2047-encoded by turns) and
/// Message-ID (folded by turns) taken from the corpus, and `values` under
/// the labels `v0:` …. Returns the mail and the hostile part of its subject.
fn hostile_mail(corpus: &[Hostile], index: usize, values: &[Hostile]) -> (Vec<u8>, String) {
    let subject = corpus[(index * 7) % corpus.len()].text.clone();
    let id_from = &corpus[(index * 11 + 3) % corpus.len()].text;
    let id: String = id_from
        .chars()
        .filter(|c| !c.is_whitespace() && !"<>\"()\\".contains(*c))
        .collect();
    let id = if index.is_multiple_of(2) {
        format!("<{id}.{}>", unique_id())
    } else {
        // Folded in the middle.
        format!("<{id}\r\n .{}>", unique_id())
    };
    let body: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, h)| format!("v{i}: \"{}\"", h.text))
        .collect();
    let raw = format!(
        "From: alice@example.com\r\nTo: helpdesk@example.com\r\nSubject: {}\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
        encoded_subject(&format!("careless {subject}"), index),
        body.join("\r\n")
    )
    .into_bytes();
    (raw, subject)
}

/// What `parse` decides for the mail must be what reaches the playbook, in
/// each of its three placements; `values` the mail was written with.
fn run_hostile_mail(
    desk: &Helpdesk,
    out: &Path,
    raw: &[u8],
    subject: &str,
    values: &[Hostile],
    tally: &mut Tally,
) {
    let decided = desk.parse(raw);
    assert_eq!(decided["request_type"], "careless", "{decided}");
    let vars = &decided["vars"];
    let want: Vec<Value> = ["subject".to_owned(), "message_id".to_owned()]
        .into_iter()
        .chain((0..PER_MAIL).map(|i| format!("v{i}")))
        .map(|n| vars[&n].clone())
        .collect();
    // How many values were captured exactly as sent (the rest are still
    // compared with what helpdesk decided).
    tally.exact += values
        .iter()
        .enumerate()
        .filter(|(i, h)| vars[format!("v{i}")] == Value::String(h.text.clone()))
        .count();
    assert!(
        vars["subject"] == Value::String(format!("careless {subject}")),
        "subject {subject:?} decided as {}",
        vars["subject"]
    );
    for file in ["argument.txt", "template.txt", "values.json"] {
        let _ = fs::remove_file(out.join(file));
    }
    let result = exec(desk.command(&["run"]), raw);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let Some(got) = arrived(out, want.len()) else {
        panic!("the playbook did not run for {decided}: {}", result.stderr);
    };
    tally.ran += 1;
    for (how, values) in ["module argument", "template", "JSON"].iter().zip(&got) {
        for (w, g) in want.iter().zip(values) {
            tally.placements += 1;
            // A value the mail did not fill is absent, and the playbook's
            // default is ''.
            let expected = if w.is_null() { json!("") } else { w.clone() };
            if &expected != g {
                tally.altered.push(format!("{how}: {w} arrived as {g}"));
            }
        }
    }
}

/// Worker `worker` of two, with its own helpdesk folder: every other mail.
fn hostile_worker(worker: usize, mails: &[&[Hostile]], corpus: &[Hostile]) -> Tally {
    let (desk, out) = careless_desk(PER_MAIL);
    let mut tally = Tally::default();
    for (index, values) in mails.iter().enumerate().skip(worker).step_by(2) {
        let (raw, subject) = hostile_mail(corpus, index, values);
        run_hostile_mail(&desk, &out, &raw, &subject, values, &mut tally);
    }
    tally
}

#[test]
fn issue_11_hostile_mail_values_subjects_and_message_ids_reach_the_playbook_verbatim() {
    let scratch = tempfile::tempdir().unwrap();
    let markers = scratch.path().join("markers");
    fs::create_dir_all(&markers).unwrap();
    let corpus = corpus(&markers, true);
    let mails: Vec<&[Hostile]> = corpus.chunks(PER_MAIL).collect();
    // Two workers, each with its own helpdesk folder, share the mails.
    let results: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let (mails, corpus) = (&mails, &corpus);
                scope.spawn(move || hostile_worker(worker, mails, corpus))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let placements: usize = results.iter().map(|r| r.placements).sum();
    let exact: usize = results.iter().map(|r| r.exact).sum();
    let ran: usize = results.iter().map(|r| r.ran).sum();
    let altered: Vec<&String> = results.iter().flat_map(|r| &r.altered).collect();
    let executed = fired(&corpus);
    eprintln!(
        "injection corpus through mail: {} strings in {} mails ({ran} playbook runs), {} values captured exactly as sent, {placements} placements, {} executed, {} altered",
        corpus.len(),
        mails.len(),
        exact,
        executed.len(),
        altered.len()
    );
    assert_eq!(ran, mails.len());
    assert!(
        exact * 10 >= corpus.len() * 9,
        "only {exact} of {} captured as sent",
        corpus.len()
    );
    assert_eq!(executed, Vec::<&str>::new(), "payloads ran");
    assert!(altered.is_empty(), "{altered:#?}");
}

/// Corpus strings per maintenance notice: one in the maintenance id, one
/// in the account, one in the summary and the rest as circuit ids.
const PER_NOTICE: usize = 40;

/// An iCalendar TEXT value: `\` `;` `,` escaped.
fn ics_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if matches!(c, '\\' | ';' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A content line folded at 75 octets (RFC 5545 3.1), never inside a
/// character.
fn ics_line(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

/// A BCOP notice from the `gen` provider carrying `values` (at least
/// three), its calendar base64-encoded as providers send it.
fn hostile_notice(index: usize, values: &[Hostile]) -> Vec<u8> {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//gen//maint//EN".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:hostile-{index}@gen.example"),
        "DTSTAMP:20261203T060000Z".to_owned(),
        "DTSTART:20261210T020000Z".to_owned(),
        "DTEND:20261210T040000Z".to_owned(),
        "SEQUENCE:1".to_owned(),
        "X-MAINTNOTE-STATUS:CONFIRMED".to_owned(),
        "X-MAINTNOTE-IMPACT:OUTAGE".to_owned(),
        format!(
            "X-MAINTNOTE-MAINTENANCE-ID:M{index} {}",
            ics_text(&values[0].text)
        ),
        format!("X-MAINTNOTE-ACCOUNT:{}", ics_text(&values[1].text)),
        format!("SUMMARY:{}", ics_text(&values[2].text)),
    ];
    for circuit in &values[3..] {
        lines.push(format!(
            "X-MAINTNOTE-OBJECT-ID;X-MAINTNOTE-OBJECT-IMPACT=DEGRADED:{}",
            ics_text(&circuit.text)
        ));
    }
    lines.extend(["END:VEVENT".to_owned(), "END:VCALENDAR".to_owned()]);
    let calendar: String = lines.iter().map(|l| ics_line(l)).collect();
    let encoded = base64(&calendar);
    let wrapped: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: NOC <noc@gen.example>\r\nTo: helpdesk@example.com\r\nSubject: Planned work {index}\r\nMessage-ID: <hostile-{index}.{}@gen.example>\r\nDate: Thu, 3 Dec 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nPlanned work, see the calendar.\r\n--b\r\nContent-Type: text/calendar; charset=utf-8; method=PUBLISH\r\nContent-Disposition: attachment; filename=\"maintenance.ics\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        unique_id(),
        wrapped.join("\r\n")
    )
    .into_bytes()
}

/// Issue 18 under issue 11's rule: the corpus placed in every text a
/// maintenance notice carries (maintenance id, account, summary, circuit
/// ids) reaches the careless `scheduled` playbook as `parse` decided it,
/// mostly exactly as sent, and never runs.
#[test]
fn issue_18_hostile_notice_values_reach_the_playbook_as_decided_and_never_run() {
    let scratch = tempfile::tempdir().unwrap();
    let markers = scratch.path().join("markers");
    fs::create_dir_all(&markers).unwrap();
    let mut corpus = corpus(&markers, true);
    // An id is at most 200 characters; the long strings go in summaries.
    corpus.retain(|h| !h.text.trim().is_empty());
    let (long, short): (Vec<Hostile>, Vec<Hostile>) = corpus
        .iter()
        .cloned()
        .partition(|h| h.text.chars().count() > 150);
    let mut notices: Vec<Vec<Hostile>> = short.chunks(PER_NOTICE).map(<[_]>::to_vec).collect();
    for (notice, text) in notices.iter_mut().zip(long) {
        notice.insert(2, text);
    }
    notices.retain(|n| n.len() >= 4);

    let names: Vec<String> = [
        "maintenance_id",
        "maintenance_account",
        "maintenance_summary",
        "maintenance_circuit_ids",
        "maintenance_circuits",
    ]
    .map(str::to_owned)
    .to_vec();
    let desk = Helpdesk::from_defaults();
    let out = desk.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let playbook = careless_playbook(desk.path(), &names, &out, false);
    let desk = desk
        .file(
            "playbooks/careless.yaml",
            &fs::read_to_string(playbook).unwrap(),
        )
        .adding(
            "maintenance:\n  providers:\n    - name: gen\n      senders: [noc@gen.example]\n  playbooks:\n    scheduled: playbooks/careless.yaml\n  unreadable: [noc-team@example.com]\n",
        );

    let (mut placed, mut exact, mut altered) = (0, 0, Vec::new());
    for (index, values) in notices.iter().enumerate() {
        let raw = hostile_notice(index, values);
        let decided = desk.parse(&raw);
        let m = &decided["maintenance"];
        assert!(m.is_object(), "notice {index} was not read: {decided}");
        let circuits = m["circuits"].as_array().unwrap();
        let ids: Vec<&str> = circuits.iter().map(|c| c["id"].as_str().unwrap()).collect();
        let decided_texts = [
            m["maintenance_id"]
                .as_str()
                .unwrap()
                .strip_prefix(&format!("M{index} "))
                .unwrap_or("")
                .to_owned(),
            m["account"].as_str().unwrap_or("").to_owned(),
            m["summary"].as_str().unwrap_or("").to_owned(),
        ];
        placed += values.len();
        exact += values[..3]
            .iter()
            .zip(&decided_texts)
            .filter(|(h, d)| h.text == **d)
            .count();
        exact += values[3..]
            .iter()
            .filter(|h| ids.contains(&h.text.as_str()))
            .count();

        for file in ["argument.txt", "template.txt", "values.json"] {
            let _ = fs::remove_file(out.join(file));
        }
        let result = exec(desk.command(&["run"]), &raw);
        assert_eq!(result.code, 0, "{}", result.stderr);
        let Some(got) = arrived(&out, names.len()) else {
            panic!(
                "scheduled did not run for notice {index}: {}",
                result.stderr
            );
        };
        let want = [
            m["maintenance_id"].clone(),
            json!(m["account"].as_str().unwrap_or("")),
            m["summary"].clone(),
            json!(ids.join(",")),
            json!(serde_json::to_string(&m["circuits"]).unwrap()),
        ];
        for (how, values) in ["module argument", "template", "JSON"].iter().zip(&got) {
            for (name, (w, g)) in names.iter().zip(want.iter().zip(values)) {
                // The circuits are JSON text: compared as JSON.
                let same = if name == "maintenance_circuits" {
                    serde_json::from_str::<Value>(w.as_str().unwrap()).ok()
                        == g.as_str()
                            .and_then(|g| serde_json::from_str::<Value>(g).ok())
                } else {
                    w == g
                };
                if !same {
                    altered.push(format!("{how}: {name} {w} arrived as {g}"));
                }
            }
        }
    }
    let executed = fired(&corpus);
    eprintln!(
        "injection corpus through maintenance notices: {} strings in {} notices, {exact} read exactly as sent, {} executed, {} altered",
        placed,
        notices.len(),
        executed.len(),
        altered.len()
    );
    assert!(
        exact * 10 >= placed * 9,
        "only {exact} of {placed} read as sent"
    );
    assert_eq!(executed, Vec::<&str>::new(), "payloads ran");
    assert!(altered.is_empty(), "{altered:#?}");
}
