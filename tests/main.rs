//! The integration suite: one test binary, a module per area. Every test
//! runs the built `helpdesk` binary; the `run` tests also run the real
//! `ansible-playbook` (installed into `.venv/` by `scripts/test`).

// A test that cannot set up its world should stop right there, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod approvals;
mod authentication;
mod crash_safety;
mod delivery;
mod errors;
mod exit_contract;
mod fairness;
mod fetch;
mod fixtures;
mod fuzz_regressions;
mod hostile;
mod injection;
mod maintenance;
mod milters;
mod mta;
mod must_show;
mod operator;
mod quarantine;
mod reading;
mod replay;
mod replies;
mod run;
mod run_results;
mod secrets;
mod self_service;
mod shipped;
mod threads;
mod trust_journal;
