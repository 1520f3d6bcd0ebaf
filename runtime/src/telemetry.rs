//! Logging: JSON lines to stdout and to `LOG_FILE`, filtered by `RUST_LOG` (default `info`).

use std::path::Path;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the log writers flushing; hold it until the process ends.
pub struct LogGuards(#[allow(dead_code)] Vec<WorkerGuard>);

/// Installs the global subscriber. Lines are never dropped: a slow disk slows decisions
/// rather than losing the audit trail. Each line is formatted once and written to both.
pub fn init(log_file: Option<&Path>) -> Result<LogGuards, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (stdout, g1) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let mut guards = vec![g1];
    let writer = match log_file {
        None => BoxMakeWriter::new(stdout),
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("LOG_FILE: cannot create `{}`: {e}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("LOG_FILE: cannot open `{}`: {e}", path.display()))?;
            let (file, g2) = NonBlockingBuilder::default().lossy(false).finish(file);
            guards.push(g2);
            BoxMakeWriter::new(stdout.and(file))
        }
    };
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(LogGuards(guards))
}
