//! Inputs the fuzzers once crashed on (`fuzz/regressions/<target>/`),
//! replayed through the same entry points the fuzz targets use.

use std::fs;

use crate::support::repo;

type Target = (&'static str, fn(&[u8]));

#[test]
fn every_saved_fuzz_case_runs_without_panicking() {
    let targets: [Target; 5] = [
        ("mail_read", helpdesk::fuzzing::mail_read),
        ("keywords", helpdesk::fuzzing::keywords),
        ("phrasebook", helpdesk::fuzzing::phrasebook),
        ("authres", helpdesk::fuzzing::authres),
        ("vars_round_trip", helpdesk::fuzzing::vars_round_trip),
    ];
    for (target, run) in targets {
        let dir = repo().join("fuzz/regressions").join(target);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".keep") {
                continue;
            }
            run(&fs::read(&path).unwrap());
        }
        // The test fixtures are valid inputs for the mail reader.
    }
    for entry in fs::read_dir(repo().join("tests/fixtures")).unwrap() {
        helpdesk::fuzzing::mail_read(&fs::read(entry.unwrap().path()).unwrap());
    }
}
