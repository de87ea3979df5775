//! Issue 12's reading corpus: replies and forwards as real mail clients
//! write them (`tests/fixtures/replies/`, made by its `generate.py`), each
//! with the new text a careful person reads in it. `helpdesk parse --format
//! json` must give that as its `text`, and must never take the old request
//! quoted or forwarded below it ("increase the quota of user: bob").
//!
//! The share of cases read right is printed per family and written to
//! `target/reading-share.txt`. The floors below are what the branch read
//! when the corpus landed; raise them as the detection rules improve.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{parse_builtin, repo};

/// Cases whose `text` must match (after `normalized`): never lower this.
const MINIMUM: usize = 202;

/// The families without an old request: everything else quotes or
/// forwards the bob request (generate.py asserts the same).
const WITHOUT_OLD_REQUEST: &[&str] = &["plain", "ownquote"];

/// Line endings a case name may carry.
const LINE_ENDINGS: &[&str] = &["lf", "crlf"];

/// One case: `<family>-<client>-<lang>-<lf|crlf>[-html]`.
struct Case {
    name: String,
    family: String,
    client: String,
    lang: String,
    eol: String,
    html: bool,
    expected: String,
    text: String,
    vars: Value,
}

fn dir() -> PathBuf {
    repo().join("tests/fixtures/replies")
}

/// Every case through the binary, once for all the tests here.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut emls: Vec<PathBuf> = fs::read_dir(dir())
            .unwrap_or_else(|e| panic!("{}: {e}", dir().display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        emls.sort();
        // Every expected text belongs to a case (a stray .txt is a case
        // renamed or removed by hand, not through generate.py).
        let txts = fs::read_dir(dir())
            .unwrap_or_else(|e| panic!("{}: {e}", dir().display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .count();
        assert_eq!(
            txts,
            emls.len(),
            "{}: .txt files without their .eml",
            dir().display()
        );
        emls.iter().map(|eml| read_case(eml)).collect()
    })
}

fn read_case(eml: &std::path::Path) -> Case {
    let name = eml
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_else(|| panic!("{}: not a UTF-8 name", eml.display()))
        .to_owned();
    let parts: Vec<&str> = name.split('-').collect();
    let html = match parts.as_slice() {
        [_, _, _, _] => false,
        [_, _, _, _, "html"] => true,
        _ => panic!("{name}: not <family>-<client>-<lang>-<lf|crlf>[-html]"),
    };
    let eol = parts[3];
    assert!(
        LINE_ENDINGS.contains(&eol),
        "{name}: line ending {eol:?} is none of {LINE_ENDINGS:?}"
    );
    let raw = fs::read(eml).unwrap_or_else(|e| panic!("{}: {e}", eml.display()));
    let crlf = raw.windows(2).any(|w| w == b"\r\n");
    let bare_lf = raw
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
    assert_eq!(
        (crlf, bare_lf),
        (eol == "crlf", eol == "lf"),
        "{name}: its line endings are not {eol}"
    );
    let txt = eml.with_extension("txt");
    let expected = fs::read_to_string(&txt).unwrap_or_else(|e| panic!("{}: {e}", txt.display()));
    let got = parse_builtin(&raw);
    let text = got["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no text field in {got}"))
        .to_owned();
    Case {
        family: parts[0].to_owned(),
        client: parts[1].to_owned(),
        lang: parts[2].to_owned(),
        eol: eol.to_owned(),
        html,
        name,
        expected,
        text,
        vars: got["vars"].clone(),
    }
}

/// The words in their lines: what the phrasebook reads does not change
/// with blank lines or runs of white space, which HTML conversion lays out
/// in its own way.
fn normalized(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Case {
    fn right(&self) -> bool {
        normalized(&self.text) == normalized(&self.expected)
    }

    fn reads_bob(&self) -> bool {
        self.vars.to_string().to_lowercase().contains("bob")
    }

    fn has_old_request(&self) -> bool {
        !WITHOUT_OLD_REQUEST.contains(&self.family.as_str())
    }
}

#[test]
fn reading_corpus_share_of_new_text_read_right() {
    let cases = cases();
    let clients: BTreeSet<&str> = cases.iter().map(|c| c.client.as_str()).collect();
    let langs: BTreeSet<&str> = cases.iter().map(|c| c.lang.as_str()).collect();
    let eols: BTreeSet<&str> = cases.iter().map(|c| c.eol.as_str()).collect();
    let kinds: BTreeSet<bool> = cases.iter().map(|c| c.html).collect();

    let mut families: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for case in cases {
        let entry = families.entry(case.family.as_str()).or_default();
        entry.2 += 1;
        if case.right() {
            entry.0 += 1;
        } else {
            wrong.push(case);
        }
        if case.text == case.expected {
            entry.1 += 1;
        }
    }
    let right = cases.len() - wrong.len();
    let mut report = format!(
        "{:<12} {:>5} {:>5} {:>5}\n",
        "family", "right", "exact", "total"
    );
    for (family, (ok, exact, total)) in &families {
        report += &format!("{family:<12} {ok:>5} {exact:>5} {total:>5}\n");
    }
    let share = 100.0 * right as f64 / cases.len().max(1) as f64;
    report += &format!(
        "{:<12} {right:>5} {:>5} {:>5}   {share:.1}% read right\n",
        "all",
        families.values().map(|f| f.1).sum::<usize>(),
        cases.len()
    );
    for (what, pick) in [
        ("text part", (|c: &Case| !c.html) as fn(&Case) -> bool),
        ("HTML only", |c: &Case| c.html),
        ("LF", |c: &Case| c.eol == "lf"),
        ("CRLF", |c: &Case| c.eol == "crlf"),
    ] {
        let of: Vec<&Case> = cases.iter().filter(|c| pick(c)).collect();
        let ok = of.iter().filter(|c| c.right()).count();
        report += &format!("{what:<12} {ok:>5} {:>5} {:>5}\n", "", of.len());
    }
    report += &format!(
        "{} clients: {}\n{} languages: {}\n",
        clients.len(),
        clients.iter().copied().collect::<Vec<_>>().join(" "),
        langs.len(),
        langs.iter().copied().collect::<Vec<_>>().join(" ")
    );
    report += "\nread wrong (expected | got):\n";
    for case in &wrong {
        report += &format!(
            "{}\n  expected {:?}\n  got      {:?}\n",
            case.name,
            normalized(&case.expected),
            normalized(&case.text)
        );
    }
    println!("{report}");
    let out = repo().join("target/reading-share.txt");
    fs::write(&out, &report).unwrap_or_else(|e| panic!("{}: {e}", out.display()));

    assert!(clients.len() >= 10, "only {} clients", clients.len());
    assert!(langs.len() >= 8, "only {} languages", langs.len());
    assert_eq!(eols.len(), LINE_ENDINGS.len(), "line endings: {eols:?}");
    assert_eq!(kinds.len(), 2, "text and HTML cases both needed");
    assert!(
        right >= MINIMUM,
        "{right} of {} cases read right, fewer than the {MINIMUM} before (see {})",
        cases.len(),
        out.display()
    );
}

#[test]
fn reading_corpus_never_takes_the_old_request() {
    let cases = cases();
    let with_old: Vec<&Case> = cases.iter().filter(|c| c.has_old_request()).collect();
    assert!(with_old.len() >= 50, "only {} cases quote", with_old.len());
    // The no-quote families are the control: bob appears nowhere in them.
    for case in cases.iter().filter(|c| !c.has_old_request()) {
        assert!(!case.reads_bob(), "{}: {}", case.name, case.vars);
    }
    let violations: Vec<&&Case> = with_old.iter().filter(|c| c.reads_bob()).collect();
    let mut report = format!(
        "{} of {} cases took the old request (vars name bob):\n",
        violations.len(),
        with_old.len()
    );
    for case in &violations {
        report += &format!("  {}: {}\n", case.name, case.vars);
    }
    println!("{report}");
    assert!(
        violations.is_empty(),
        "{} cases read the quoted bob request:\n{report}",
        violations.len()
    );
}
