//! Subcommands of the `loftwatch` binary. Exit codes: 0 success, 1 a probe or the daemon
//! failed, 2 invalid configuration, a missing or unusable credential, or bad usage.

mod check;
mod demo;
mod logging;
mod silence;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use loftwatch::config::{self, Config};

/// Synthetic monitoring and alerting for integrations that depend on the SalesLoft REST API.
#[derive(Debug, Parser)]
#[command(name = "loftwatch", version, about)]
struct Cli {
    /// Log format: text for terminals and journald, json for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "LOFTWATCH_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: probe on schedule, evaluate rules, send notifications.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "alerts.toml", env = "LOFTWATCH_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file without calling SalesLoft: exit 0 if valid, 2 if not.
    Validate {
        /// Configuration file; wins over --config and LOFTWATCH_CONFIG.
        file: Option<PathBuf>,
        /// Configuration file, when FILE is not given.
        #[arg(short, long, default_value = "alerts.toml", env = "LOFTWATCH_CONFIG")]
        config: PathBuf,
    },
    /// Run every probe once and report: exit 0 if all passed, 1 if one failed, 2 on bad config.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = "alerts.toml", env = "LOFTWATCH_CONFIG")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the SalesLoft API simulator with scriptable faults.
    Simulate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: SocketAddr,
        /// Scenario file (a fault timeline) to play from start-up.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Show the whole job against the built-in simulator: every checklist rule fires and
    /// resolves within three minutes, and every notification is written to a folder.
    Demo {
        /// Folder for the notifications; a new folder under the temporary directory by default.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add, list or expire silences of a running daemon through its HTTP API.
    Silence {
        /// Base URL of the daemon's HTTP API.
        #[arg(
            long,
            default_value = "http://127.0.0.1:9898",
            env = "LOFTWATCH_SERVER"
        )]
        server: String,
        /// Bearer token of the daemon (its server.token), needed by add and expire when set.
        #[arg(long, env = "LOFTWATCH_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        action: silence::SilenceAction,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(
        cli.log_format == LogFormat::Json,
        matches!(cli.command, Command::Demo { .. }),
    );
    match cli.command {
        Command::Validate { file, config } => validate(&file.unwrap_or(config)),
        Command::Run { config: path } => match load(&path) {
            Ok(config) => runtime().block_on(run(config, path)),
            Err(code) => code,
        },
        Command::Check { config, json } => match config::load(&config) {
            Ok(config) => runtime().block_on(check::run(config, json, process_env())),
            Err(error) => {
                eprintln!("{error}");
                eprintln!("{}: invalid configuration", config.display());
                if json {
                    check::print_json_error(&error.to_string());
                }
                ExitCode::from(2)
            }
        },
        Command::Simulate { listen, scenario } => runtime().block_on(simulate(listen, scenario)),
        Command::Demo { out } => runtime().block_on(demo::run(out)),
        Command::Silence {
            server,
            token,
            action,
        } => runtime().block_on(silence::run(&server, token.as_deref(), action)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime should start")
}

/// Loads a configuration, printing every problem and returning exit code 2 if it is invalid.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|error| {
        eprintln!("{error}");
        eprintln!("{}: invalid configuration", path.display());
        ExitCode::from(2)
    })
}

/// Validates the file, prints each probe's cost per minute of the team's rate budget, and
/// rejects a configuration over `budget_share` or with a page deeper than 100.
fn validate(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // `load` has read the file, so a failure here is a file changed in between.
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let file = path.display().to_string();
    let budget = config::check_budget(&config, &text, &file);
    let report = match &budget {
        Ok(report) => report.clone(),
        Err(_) => {
            let probes: Vec<_> = config.probes.iter().map(config::cost_per_minute).collect();
            let total = probes.iter().map(config::ProbeCost::per_minute).sum();
            config::BudgetReport {
                probes,
                total,
                allowed: config.salesloft.budget.allowed_cost(),
            }
        }
    };
    for probe in &report.probes {
        println!(
            "probe {:?}: {:.1} per minute ({:.2} runs x cost {})",
            probe.probe,
            probe.per_minute(),
            probe.runs_per_minute,
            probe.request_cost
        );
    }
    println!(
        "rate budget: probes cost {:.1} per minute of {:.1} allowed (budget_share {} of {})",
        report.total,
        report.allowed,
        config.salesloft.budget.share,
        config.salesloft.budget.per_minute
    );
    if let Err(error) = budget {
        eprintln!("{error}");
        eprintln!("{file}: invalid configuration");
        return ExitCode::from(2);
    }
    println!(
        "{file}: valid: {} probes, {} rules",
        config.probes.len(),
        config.rules.len()
    );
    ExitCode::SUCCESS
}

pub(crate) fn process_env() -> loftwatch::daemon::EnvLookup {
    Arc::new(|name: &str| std::env::var(name).ok())
}

/// Returns a receiver that turns true on SIGINT or SIGTERM.
pub(crate) fn shutdown_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = sender.send(true);
    });
    receiver
}

/// Returns a channel of reload requests, one per SIGHUP.
fn reload_on_sighup() -> tokio::sync::mpsc::Receiver<loftwatch::daemon::ReloadRequest> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP, so reload by signal is off");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP received, reloading the configuration");
            let (reply, _outcome) = tokio::sync::oneshot::channel();
            // The daemon logs the outcome itself; the reply is only for HTTP callers.
            if sender
                .send(loftwatch::daemon::ReloadRequest { reply })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    #[cfg(not(unix))]
    drop(sender);
    receiver
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(config: Config, path: PathBuf) -> ExitCode {
    let options = loftwatch::daemon::RunOptions {
        env: process_env(),
        config_path: Some(path),
        file_sink: None,
        observer: None,
        reload: Some(reload_on_sighup()),
        shutdown: shutdown_signal(),
    };
    match loftwatch::daemon::run(config, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "loftwatch cannot start");
            start_error_code(&error)
        }
    }
}

/// Returns 2 for a start failure that the configuration or a credential causes (a missing or
/// unusable secret, a client or receiver the settings do not allow), and 1 otherwise.
pub(crate) fn start_error_code(error: &loftwatch::daemon::StartError) -> ExitCode {
    use loftwatch::daemon::StartError;
    match error {
        StartError::Secret(_) | StartError::Client(_) | StartError::Notify(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

async fn simulate(listen: SocketAddr, scenario: Option<PathBuf>) -> ExitCode {
    let mut options = loftwatch::simulator::SimulatorOptions::default();
    if let Some(path) = scenario {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("{}: cannot read the scenario: {error}", path.display());
                return ExitCode::from(2);
            }
        };
        match loftwatch::simulator::Scenario::from_toml(&text) {
            Ok(scenario) => options.scenario = Some(scenario),
            Err(error) => {
                eprintln!("{}: {error}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let handle = match loftwatch::simulator::start(listen, options).await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("SalesLoft simulator listening on {}", handle.base_url());
    let mut shutdown = shutdown_signal();
    let _ = shutdown.changed().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}
