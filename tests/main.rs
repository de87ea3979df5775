//! The integration suite: one test binary, a module per area. Every test
//! runs the built `helpdesk` binary; the `run` tests also run the real
//! `ansible-playbook` (installed into `.venv/` by `scripts/test`).

mod support;

mod errors;
mod fixtures;
mod must_show;
mod run;
mod shipped;
