//! The `authz` binary: parse arguments, load configuration, install logging, run.

use std::process::ExitCode;

use authz::cli::{Cli, Command};
use authz::config::Config;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        tool => code(authz::cli::run(tool)),
    }
}

fn code(rc: i32) -> ExitCode {
    ExitCode::from(u8::try_from(rc).unwrap_or(1))
}

fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("authz: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    let _guards = match ipm_runtime::telemetry::init(config.log_file.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("authz: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("authz: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        // Installed before serving: a signal as soon as the service answers must not kill it.
        let signals = match ipm_runtime::signals::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("authz: cannot install signal handlers: {e}");
                return ExitCode::from(2);
            }
        };
        let handle = match authz::server::run(config).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "refusing to start");
                eprintln!("authz: refusing to start: {e}");
                return ExitCode::from(2);
            }
        };
        signals.wait(|| handle.reload_now()).await;
        tracing::info!("shutting down: draining requests in flight");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}
