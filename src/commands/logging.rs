//! Where diagnostics go: stderr (no colour when it is not a terminal, so
//! none reaches a bounce) and `--log-file`, as text or JSON.

use std::os::unix::fs::OpenOptionsExt as _;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Diagnostics go to stderr (and to `--log-file`), as text or JSON;
/// `HELPDESK_LOG` (e.g. `debug`) overrides -v.
pub(crate) fn init(verbose: u8, format: LogFormat, file: Option<&std::path::Path>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        || EnvFilter::try_from_env("HELPDESK_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let layer = |writer: tracing_subscriber::fmt::writer::BoxMakeWriter, ansi: bool| {
        let base = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(false)
            .with_ansi(ansi);
        match format {
            LogFormat::Text => base.with_filter(filter()).boxed(),
            LogFormat::Json => base.json().with_filter(filter()).boxed(),
        }
    };
    // No colour codes in what an MTA copies into a bounce.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut layers = vec![layer(
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
        ansi,
    )];
    if let Some(path) = file {
        // 0600: it names senders and what they asked for.
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => layers.push(layer(
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file)),
                false,
            )),
            Err(e) => eprintln!(
                "helpdesk: --log-file {}: {e}; logging to stderr only",
                path.display()
            ),
        }
    }
    tracing_subscriber::registry().with(layers).init();
}
