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
        out.push_str(&crate::commands::report::maintenance_block(
            &stored.maintenance,
        ));
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
