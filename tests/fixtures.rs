//! The golden corpus: every `tests/fixtures/*.eml` through `helpdesk parse
//! --format json` on the built-in defaults must print its `.json` twin,
//! with LF and with CRLF line endings. `HELPDESK_BLESS=1` rewrites the
//! twins; review the diff before committing it.

use std::fs;

use serde_json::Value;

use crate::support::{parse_builtin, repo};

fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    let mut previous = 0u8;
    for &byte in raw {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    out
}

#[test]
fn golden_fixtures_lf_and_crlf() {
    let dir = repo().join("tests/fixtures");
    let bless = std::env::var_os("HELPDESK_BLESS").is_some();
    let mut checked = 0;
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    entries.sort();
    for eml in entries {
        let raw = fs::read(&eml).unwrap_or_else(|e| panic!("{e}"));
        let got = parse_builtin(&raw);
        let golden = eml.with_extension("json");
        if bless {
            let text = serde_json::to_string_pretty(&got).unwrap_or_default() + "\n";
            fs::write(&golden, text).unwrap_or_else(|e| panic!("{e}"));
        }
        let expected: Value =
            serde_json::from_str(&fs::read_to_string(&golden).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run with HELPDESK_BLESS=1 to create it)",
                    golden.display()
                )
            }))
            .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        assert_eq!(got, expected, "{} (LF)", eml.display());
        assert_eq!(
            parse_builtin(&crlf(&raw)),
            expected,
            "{} (CRLF)",
            eml.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} fixtures found in {}",
        dir.display()
    );
}
