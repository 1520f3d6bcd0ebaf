//! The `ipm-api` binary: parse arguments, load configuration, install logging, then serve
//! (the default) or apply the database migrations.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ipm_api::config::Config;

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
    /// Apply the database migrations to `DATABASE_URL`, then exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipm-api: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    let _guards = match authz::telemetry::init(config.log_file.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ipm-api: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipm-api: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match command {
            Command::Migrate => match ipm_api::server::migrate(&config).await {
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
            },
            Command::Serve => serve(config).await,
        }
    })
}

async fn serve(config: Config) -> ExitCode {
    let handle = match ipm_api::server::run(config).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "refusing to start");
            eprintln!("ipm-api: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    wait_for_signals(&handle).await;
    tracing::info!("shutting down: draining requests in flight");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// Returns on SIGTERM or SIGINT; SIGHUP reloads policies and groups.
async fn wait_for_signals(handle: &ipm_api::server::ApiHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading policies and groups");
                handle.reload_now();
            }
        }
    }
}
