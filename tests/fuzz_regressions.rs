//! Inputs the fuzzers once crashed on (`fuzz/regressions/<target>/`),
//! replayed through the same entry points the fuzz targets use; and the
//! poison mails of issue 12 (`poison-*.eml`, written by
//! fuzz/poison/generate.py), each read in a child process under a time and
//! memory bound so that a blow-up fails the test instead of hanging it or
//! taking the machine's memory.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::repo;

type Target = (&'static str, fn(&[u8]));

/// Seconds one poison mail may take in this (debug, unoptimised) build:
/// the release target is 250 ms and the budget a few seconds, so this is
/// far above linear reading and far below a quadratic one.
const POISON_SECONDS: u64 = 30;
/// Address space of the child that reads one poison mail: the release
/// target is 3 × size + 10 MiB resident; this leaves room for the test
/// binary itself, and stops a blow-up (11 GB for the wide table once).
const POISON_MEMORY_MIB: u64 = 1024;

fn is_poison(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("poison-"))
}

fn poison_files() -> Vec<PathBuf> {
    let dir = repo().join("fuzz/regressions/mail_read");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| is_poison(p))
        .collect();
    files.sort();
    files
}

#[test]
fn every_saved_fuzz_case_runs_without_panicking() {
    let targets: [Target; 7] = [
        ("mail_read", helpdesk::fuzzing::mail_read),
        ("keywords", helpdesk::fuzzing::keywords),
        ("phrasebook", helpdesk::fuzzing::phrasebook),
        ("authres", helpdesk::fuzzing::authres),
        ("vars_round_trip", helpdesk::fuzzing::vars_round_trip),
        ("html_quotes", helpdesk::fuzzing::html_and_quotes),
        ("maintenance_ical", helpdesk::fuzzing::maintenance_ical),
    ];
    for (target, run) in targets {
        let dir = repo().join("fuzz/regressions").join(target);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            // Poison mails are read under bounds, below.
            if path.file_name().is_some_and(|n| n == ".keep") || is_poison(&path) {
                continue;
            }
            run(&fs::read(&path).unwrap());
        }
    }
    // The test fixtures (the reply corpus too) are valid inputs for the
    // mail reader.
    for folder in ["tests/fixtures", "tests/fixtures/replies"] {
        for entry in fs::read_dir(repo().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                helpdesk::fuzzing::mail_read(&fs::read(&path).unwrap());
            }
        }
    }
}

/// The committed poison mails are exactly what the generator writes.
#[test]
fn poison_mails_are_what_the_generator_writes() {
    let status = Command::new("python3")
        .arg(repo().join("fuzz/poison/generate.py"))
        .arg("--check")
        .status()
        .expect("python3 (Debian's python3) is needed to check the poison mails");
    assert!(
        status.success(),
        "fuzz/poison/generate.py --check: {status}"
    );
}

/// `helpdesk parse` of `file` on the built-in defaults (read, classify,
/// extract, trust, the reply it would send), with its address space limited
/// by the shell's ulimit (no unsafe setrlimit here).
fn bounded_parse(file: &Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" \"$@\"",
            POISON_MEMORY_MIB * 1024
        ))
        .arg(env!("CARGO_BIN_EXE_helpdesk"))
        .args(["parse", "--format", "json"])
        .arg(file)
        .env_remove("HELPDESK_CONFIG")
        .env_remove("HELPDESK_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The child's status, or `None` when it was still running at `deadline`
/// and so was killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads one poison mail in a bounded child: what went wrong, if anything.
fn read_poison(file: &Path) -> Option<String> {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let started = Instant::now();
    let mut child = bounded_parse(file);
    // Drained as it comes, so a large answer cannot block the child.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let status = wait_until(&mut child, started + Duration::from_secs(POISON_SECONDS));
    let seconds = started.elapsed().as_secs_f64();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    match status {
        None => Some(format!(
            "{name}: still running after {POISON_SECONDS} s, killed"
        )),
        Some(status) if !status.success() => {
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let why = if stderr.contains("memory allocation") {
                format!("out of its {POISON_MEMORY_MIB} MiB address space")
            } else {
                format!("failed ({status}): {last}")
            };
            Some(format!("{name}: {why} after {seconds:.1} s"))
        }
        Some(_) => {
            let out = reader.join().unwrap();
            match serde_json::from_str::<serde_json::Value>(&out) {
                Ok(json) if json.get("text").is_some() => {
                    eprintln!("{name}: read in {seconds:.1} s");
                    None
                }
                _ => Some(format!("{name}: parse printed no decision: {out:.200}")),
            }
        }
    }
}

/// Every class of poison mail: wide tables, deep nesting, runs of blank
/// and quote lines, huge lines, many tiny or deeply nested parts, many
/// headers, long encoded words, broken base64.
#[test]
fn every_poison_mail_is_read_within_bounds() {
    let files = poison_files();
    assert!(
        files.len() >= 12,
        "expected the poison mails in fuzz/regressions/mail_read/ (fuzz/poison/generate.py writes them), found {}",
        files.len()
    );
    let failures: Vec<String> = files.iter().filter_map(|file| read_poison(file)).collect();
    assert!(
        failures.is_empty(),
        "poison mails not read within {POISON_SECONDS} s and {POISON_MEMORY_MIB} MiB:\n  {}",
        failures.join("\n  ")
    );
}
