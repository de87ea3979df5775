//! helpdesk: plain email in, Ansible runs out.
//!
//! The modules follow the mail through a one-way pipeline:
//! `mail` (bytes → sender, subject, clean body) → `keywords` (subject →
//! request type) → `phrasebook` (subject + body → vars) → `ansible` (run the
//! playbook). `request` holds the decision passed along, `desk` the helpdesk
//! folder, `config` the validated configuration; `cli`, `commands`,
//! `report` and `exit` are the program's edges.

pub mod ansible;
pub mod authres;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod desk;
pub mod exit;
pub mod fuzzing;
pub mod help;
pub mod html;
pub mod journal;
pub mod keywords;
pub mod loops;
pub mod mail;
pub mod metrics;
pub mod phrasebook;
pub mod phrases;
pub mod pipeline;
pub mod quotes;
pub mod ratelimit;
pub mod redact;
pub mod replay;
pub mod reply;
pub mod report;
pub mod request;
pub mod sections;
pub mod setup;
pub mod slots;
pub mod spool;
pub mod terminal;
pub mod thread;
pub mod transport;
pub mod trust;
