#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| helpdesk::fuzzing::html_and_quotes(data));
