//! `helpdesk maintenances [--all]`: the providers' maintenances the
//! journal keeps, upcoming and ongoing first, with their circuits and
//! whether their `started` and `ended` playbooks ran. Every value came
//! from a provider's mail, so the text is escaped for the terminal.

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::Format;
use crate::commands::terminal::{escape, escape_json};
use crate::delivery::journal::maintenances::Stored;
use crate::exit::{Failure, Status};
use crate::maintenance::format_time;

pub(super) fn list(
    config_path: Option<&Path>,
    all: bool,
    format: Format,
) -> Result<Status, Failure> {
    let (_, journal) = super::journal_for_reading(config_path)?;
    let listed = journal
        .maintenances(all, chrono::Utc::now())
        .map_err(|e| Failure::new(Status::TempFail, e))?;
    let out = match format {
        Format::Json => {
            let json = serde_json::to_string(&listed).unwrap_or_else(|_| "[]".into());
            escape_json(&json).into_owned() + "\n"
        }
        Format::Text => text(&listed, all),
    };
    super::print_stdout(&out);
    Ok(Status::Ok)
}

fn text(listed: &[Stored], all: bool) -> String {
    if listed.is_empty() {
        return if all {
            "no maintenances in the journal\n".into()
        } else {
            "no upcoming or ongoing maintenances (--all lists every one)\n".into()
        };
    }
    let mut out = String::new();
    for stored in listed {
        let m = &stored.maintenance;
        let _ = writeln!(
            out,
            "{} {}  {}  {} → {}{}",
            escape(&m.provider),
            escape(&m.maintenance_id),
            m.status.as_str(),
            format_time(&m.start),
            format_time(&m.end),
            m.sequence
                .map_or_else(String::new, |n| format!("  seq {n}"))
        );
        if !m.summary.is_empty() {
            let _ = writeln!(out, "  {}", escape(&m.summary));
        }
        for circuit in &m.circuits {
            let _ = writeln!(
                out,
                "  circuit {} {}",
                escape(&circuit.id),
                escape(&circuit.impact)
            );
        }
        for (phase, at, outcome) in [
            ("started", &stored.started_at, &stored.started_outcome),
            ("ended", &stored.ended_at, &stored.ended_outcome),
        ] {
            if let Some(at) = at {
                let _ = writeln!(
                    out,
                    "  {phase} {at} {}",
                    outcome
                        .as_deref()
                        .map_or("(running, or its outcome was lost)".into(), escape)
                );
            }
        }
    }
    out
}
