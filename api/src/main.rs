//! The `ipm-api` binary: parse arguments, load configuration, install logging, then serve
//! (the default), apply the database migrations, or collect what a crash left in storage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ipm_api::config::{Config, DbSettings};

#[derive(Debug, Parser)]
#[command(
    name = "ipm-api",
    version,
    about = "The Image Project Manager API, authorized by Cedar policies"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default). Configured by environment variables and `.env`.
    Serve,
    /// Apply the database migrations to `DATABASE_URL`, then exit. Needs only the `DB_*`
    /// variables and `DATABASE_URL`.
    Migrate,
    /// Find stored images without a row, rows without an image and unfinished uploads (what
    /// a crash leaves behind). Reports only, unless `--apply`. Needs the `DB_*`, `STORAGE_*`
    /// and `S3_*` variables.
    Gc {
        /// Remove what is found.
        #[arg(long)]
        apply: bool,
        /// Leave objects and unfinished uploads younger than this alone: they may belong to
        /// an upload in progress.
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        min_age: u64,
        /// Remove rows even when every image's object seems missing, and objects even when
        /// most have no row (both usually mean a wrong database or storage setting).
        #[arg(long)]
        force: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("ipm-api: cannot start the runtime: {e}");
            ExitCode::from(2)
        })
}

fn refuse(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ipm-api: refusing to start: {e}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Migrate => migrate(),
        Command::Gc {
            apply,
            min_age,
            force,
        } => gc(ipm_api::gc::GcOptions {
            apply,
            min_age: std::time::Duration::from_secs(min_age),
            force,
        }),
    }
}

/// `LOG_FILE`, for the commands that read only part of the configuration.
fn log_file() -> Option<PathBuf> {
    ipm_runtime::config::log_file(&ipm_runtime::config::environment().unwrap_or_default())
}

fn migrate() -> ExitCode {
    let settings = match DbSettings::from_env() {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    let _guards = match ipm_runtime::telemetry::init(log_file().as_deref()) {
        Ok(g) => g,
        Err(e) => return refuse(e),
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        match ipm_api::server::migrate(&settings).await {
            Ok(db) => {
                tracing::info!(database = db.backend(), "migrations applied");
                db.close().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "migrations failed");
                eprintln!("ipm-api: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn gc(options: ipm_api::gc::GcOptions) -> ExitCode {
    let settings = match DbSettings::from_env() {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    let images = match ipm_api::image_config::ImageConfig::from_env() {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let mut out = std::io::stdout();
        match ipm_api::gc::collect(&settings, &images.storage, options, &mut out).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipm-api gc: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let _guards = match ipm_runtime::telemetry::init(config.log_file.as_deref()) {
        Ok(g) => g,
        Err(e) => return refuse(e),
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        // Installed before serving: a signal as soon as the service answers must not kill it.
        let signals = match ipm_runtime::signals::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ipm-api: cannot install signal handlers: {e}");
                return ExitCode::from(2);
            }
        };
        let handle = match ipm_api::server::run(config).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "refusing to start");
                return refuse(e);
            }
        };
        signals.wait(|| handle.reload_now()).await;
        tracing::info!("shutting down: draining requests in flight");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}
