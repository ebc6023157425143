//! `loftwatch check`: one pass over every probe, the post-launch smoke test.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use loftwatch::config::Config;
use loftwatch::daemon::{Credentials, build_client};
use loftwatch::probe::{Outcome, ProbeResult};
use loftwatch::salesloft::RateLimitPauses;

/// Runs each probe once, concurrently, and prints a table or JSON. Exit 0 when all passed.
/// Exits 2, as `validate` and `run` do, when a credential is missing or unusable.
pub async fn run(config: Config, json: bool, env: loftwatch::daemon::EnvLookup) -> ExitCode {
    let client = match client_with_secrets(&config, &env) {
        Ok(client) => Arc::new(client),
        Err(error) => {
            eprintln!("{error}");
            if json {
                print_json_error(&error);
            }
            return ExitCode::from(2);
        }
    };
    let runs = config.probes.iter().map(|spec| {
        let client = client.clone();
        let spec = spec.clone();
        tokio::spawn(async move { loftwatch::probe::run(&client, &spec).await })
    });
    let mut results = Vec::new();
    for run in runs {
        match run.await {
            Ok(result) => results.push(result),
            Err(error) => {
                eprintln!("a probe task failed: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let passed = results.iter().all(|result| result.outcome == Outcome::Ok);
    let report = if json {
        json_report(&config, passed, &results)
    } else {
        table_report(&results)
    };
    if let Err(error) = write_stdout(&report) {
        eprintln!("cannot write the report to stdout: {error}");
        return ExitCode::FAILURE;
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds the SalesLoft client, and reads the other secrets `run` needs, so that `check`
/// reports a missing SMTP password or server token before the daemon would fail on it.
fn client_with_secrets(
    config: &Config,
    env: &loftwatch::daemon::EnvLookup,
) -> Result<loftwatch::salesloft::Client, String> {
    let credentials =
        Credentials::load(&config.salesloft, env, None).map_err(|error| error.to_string())?;
    let pauses = Arc::new(RateLimitPauses::new());
    let client = build_client(&config.salesloft, &credentials, &pauses)
        .map_err(|error| error.to_string())?;
    let email_password = config
        .receivers
        .email
        .as_ref()
        .and_then(|email| email.password.as_ref());
    if let Some(source) = email_password {
        source
            .load("receivers.email.password", &**env)
            .map_err(|error| error.to_string())?;
    }
    if let Some(source) = &config.server.token {
        source
            .load("server.token", &**env)
            .map_err(|error| error.to_string())?;
    }
    Ok(client)
}

/// Prints `{"passed": false, "error": ...}` on stdout for `check --json`.
pub fn print_json_error(message: &str) {
    let report = serde_json::json!({ "passed": false, "error": message });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    let _ = write_stdout(&text);
}

fn json_report(config: &Config, passed: bool, results: &[ProbeResult]) -> String {
    let report = serde_json::json!({
        "passed": passed,
        "base_url": config.salesloft.base_url,
        "probes": results.iter().map(result_json).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}

fn table_report(results: &[ProbeResult]) -> String {
    let mut text = String::new();
    for result in results {
        let passed = result.outcome == Outcome::Ok;
        let status = result
            .status
            .map_or("-".to_owned(), |status| status.to_string());
        let detail = if passed {
            ""
        } else {
            result.detail.as_deref().unwrap_or("")
        };
        // Writing into a String cannot fail.
        let _ = writeln!(
            text,
            "{:<6} {:<20} status {:<4} {:>8.1} ms  {}",
            if passed { "PASS" } else { "FAIL" },
            result.probe,
            status,
            result.latency.as_secs_f64() * 1000.0,
            detail,
        );
    }
    let failed = results
        .iter()
        .filter(|result| result.outcome != Outcome::Ok)
        .count();
    let _ = writeln!(text, "{} probes, {failed} failed", results.len());
    text
}

/// Writes `text` to a locked stdout and flushes it. A reader that closed the pipe early (as
/// `loftwatch check | head -3` does) is not an error: the rest of the output is discarded.
pub(super) fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    match written {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn result_json(result: &ProbeResult) -> serde_json::Value {
    serde_json::json!({
        "probe": &*result.probe,
        "passed": result.outcome == Outcome::Ok,
        "outcome": result.outcome.as_str(),
        "status": result.status,
        "latency_ms": (result.latency.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
        "ratelimit_cost": result.rate_limit.cost,
        "ratelimit_remaining_minute": result.rate_limit.remaining,
        "detail": result.detail,
    })
}
