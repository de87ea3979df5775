//! helpdesk: plain email in, Ansible runs out.
//!
//! The module tree follows a mail through a one-way pipeline (see
//! `docs/ARCHITECTURE.md`):
//!
//! ```text
//! desk/      the helpdesk folder: config, keywords, phrasebooks, help, defaults
//! mail/      bytes -> Mail (mail-parser, HTML, quotes, threads)
//! decide/    classify, extract, trust -> Decision (the whole of `parse`)
//! run/       dispatch: ansible-playbook, slots
//! reply/     compose and send the answer
//! pipeline   one mail through every stage and its edges
//! outcome    the one vocabulary of outcomes: what became of a message
//! delivery/  spool, journal, budgets, retry: who owns a message
//! commands/  the subcommands, check, setup, replay, and what they print
//! ```

mod cli;
mod commands;
mod decide;
mod delivery;
mod desk;
mod exit;
mod fetch;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod mail;
mod maintenance;
mod outcome;
mod pipeline;
mod reply;
mod run;

pub use commands::main;
