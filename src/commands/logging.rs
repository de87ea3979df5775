//! Where diagnostics go: stderr and `--log-file`, as text or JSON.
//!
//! When stderr is not a terminal it is an MTA's pipe, a service's journal
//! or syslog: they stamp the time themselves and keep only the start of a
//! line (Postfix's pipe about 100 characters), so a text line there is the
//! message alone, with no colour, time or level before it. Each handled
//! request leaves one summary line that starts with its outcome and row
//! (`pipeline::SUMMARY`), shown at the default verbosity.

use std::os::unix::fs::OpenOptionsExt as _;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Diagnostics go to stderr (and to `--log-file`), as text or JSON;
/// `HELPDESK_LOG` (e.g. `debug`) overrides -v; -vvv is also the libraries'
/// debugging.
pub(crate) fn init(verbose: u8, format: LogFormat, file: Option<&std::path::Path>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The libraries (TLS, IMAP) say only their warnings below -vvv.
    let default = match verbose {
        0 => "warn",
        1 => "helpdesk=info,warn",
        2 => "helpdesk=debug,warn",
        _ => "debug",
    };
    // The summary lines at every verbosity: one line per delivery.
    let default = format!("{default},{}=info", crate::pipeline::SUMMARY);
    let filter =
        || EnvFilter::try_from_env("HELPDESK_LOG").unwrap_or_else(|_| EnvFilter::new(&default));
    // `ansi`: colour (a terminal only, so none reaches a bounce);
    // `stamped`: time and level before the message (a terminal, a file).
    let layer = |writer: tracing_subscriber::fmt::writer::BoxMakeWriter, ansi: bool, stamped| {
        let base = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(false)
            .with_ansi(ansi);
        match format {
            LogFormat::Text if stamped => base.with_filter(filter()).boxed(),
            LogFormat::Text => base
                .without_time()
                .with_level(false)
                .with_filter(filter())
                .boxed(),
            LogFormat::Json => base.json().with_filter(filter()).boxed(),
        }
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut layers = vec![layer(
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
        terminal,
        terminal,
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
                true,
            )),
            Err(e) => eprintln!(
                "helpdesk: --log-file {}: {e}; logging to stderr only",
                path.display()
            ),
        }
    }
    tracing_subscriber::registry().with(layers).init();
}
