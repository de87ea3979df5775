//! A Prometheus text-format file for node_exporter's textfile collector,
//! rebuilt after every message from the totals the journal keeps (they
//! are updated in the same commit that finishes a row, so they stay right
//! however many deliveries run at once) and replaced atomically, at
//! `metrics_file` (by default in the state folder).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::delivery::journal::{DURATION_BUCKETS_MS, Journal, JournalError};

pub(crate) fn render(journal: &Journal) -> Result<String, JournalError> {
    let crate::delivery::journal::Totals {
        counts,
        buckets,
        sum_ms,
    } = journal.totals()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP helpdesk_messages_total Messages handled, by request type and outcome."
    );
    let _ = writeln!(out, "# TYPE helpdesk_messages_total counter");
    for (request_type, outcome, count) in counts {
        let _ = writeln!(
            out,
            "helpdesk_messages_total{{request_type=\"{}\",outcome=\"{}\"}} {count}",
            escape(&request_type),
            escape(outcome.as_str())
        );
    }
    let _ = writeln!(
        out,
        "# HELP helpdesk_run_duration_seconds Time ansible-playbook ran."
    );
    let _ = writeln!(out, "# TYPE helpdesk_run_duration_seconds histogram");
    let mut within = 0;
    for (bound, count) in DURATION_BUCKETS_MS.iter().zip(&buckets) {
        within += count;
        let _ = writeln!(
            out,
            "helpdesk_run_duration_seconds_bucket{{le=\"{}\"}} {within}",
            *bound as f64 / 1000.0
        );
    }
    let runs: u64 = buckets.iter().sum();
    let _ = writeln!(
        out,
        "helpdesk_run_duration_seconds_bucket{{le=\"+Inf\"}} {runs}"
    );
    let _ = writeln!(
        out,
        "helpdesk_run_duration_seconds_sum {}",
        sum_ms as f64 / 1000.0
    );
    let _ = writeln!(out, "helpdesk_run_duration_seconds_count {runs}");
    render_sources(&mut out, &journal.sources()?);
    let _ = writeln!(
        out,
        "# HELP helpdesk_maintenances Provider maintenances that have not ended, by status."
    );
    let _ = writeln!(out, "# TYPE helpdesk_maintenances gauge");
    for (status, count) in journal.maintenance_counts(chrono::Utc::now())? {
        let _ = writeln!(
            out,
            "helpdesk_maintenances{{status=\"{}\"}} {count}",
            status.as_str()
        );
    }
    Ok(out)
}

/// `fetch`'s sources: whether each could be read at the last attempt,
/// failed attempts in a row, and messages taken from it.
fn render_sources(out: &mut String, sources: &[crate::delivery::journal::Health]) {
    if sources.is_empty() {
        return;
    }
    let families = [
        (
            "helpdesk_source_up",
            "gauge",
            "Whether the last attempt to read the source got through.",
        ),
        (
            "helpdesk_source_failures",
            "gauge",
            "Failed attempts in a row to read the source.",
        ),
        (
            "helpdesk_source_fetched_total",
            "counter",
            "Messages taken from the source.",
        ),
    ];
    for (name, kind, help) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for source in sources {
            let value = match name {
                "helpdesk_source_up" => i64::from(source.reachable),
                "helpdesk_source_failures" => source.failures,
                _ => source.fetched,
            };
            let _ = writeln!(out, "{name}{{source=\"{}\"}} {value}", escape(&source.name));
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `path` (`metrics_file`) via a temporary file and a rename, so a
/// scraper never reads half a file. It holds only counts, and it is the one
/// file helpdesk writes for others: 0644 whatever the umask (a folder made
/// for it 0755), so a collector running as another user can read it.
pub(crate) fn write(path: &Path, journal: &Journal) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let text = render(journal)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    let mut file = tempfile::Builder::new()
        .prefix(".metrics-")
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
