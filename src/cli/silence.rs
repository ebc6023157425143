//! `loftwatch silence add|list|expire`: manages the silences of a running daemon through its
//! HTTP API.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Action of `loftwatch silence`.
#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// Create a silence and print its id.
    Add {
        /// Matchers that an alert must all satisfy, such as 'probe="me"' or
        /// 'alertname=~"High.*"'.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long the silence lasts from its start, such as 30m or 2h.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Start time in RFC 3339, such as 2026-12-04T18:00:00Z; now by default.
        #[arg(long)]
        starts: Option<String>,
        /// Author of the silence.
        #[arg(long, env = "USER")]
        author: String,
        /// Reason the alerts are silenced.
        #[arg(long)]
        comment: String,
    },
    /// List the silences: pending and active ones, and expired ones with --all.
    List {
        /// Also list expired silences.
        #[arg(long)]
        all: bool,
        /// Print the daemon's JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        /// Id printed by `silence add` or `silence list`.
        id: String,
    },
}

/// Runs one silence action against the daemon at `server` and returns the exit code: 0 on
/// success, 1 when the daemon cannot be reached or fails, 2 when it rejects the request.
pub async fn run(server: &str, token: Option<&str>, action: SilenceAction) -> ExitCode {
    let base = format!("{}/api/v1/silences", server.trim_end_matches('/'));
    let request = match &action {
        SilenceAction::Add {
            matchers,
            duration,
            starts,
            author,
            comment,
        } => {
            let start = match &starts {
                Some(text) => match DateTime::parse_from_rfc3339(text) {
                    Ok(time) => SystemTime::from(time.to_utc()),
                    Err(error) => {
                        eprintln!("invalid --starts {text:?}: {error}; write RFC 3339");
                        return ExitCode::from(2);
                    }
                },
                None => SystemTime::now(),
            };
            let body = json!({
                "matchers": matchers,
                "startsAt": rfc3339(start),
                "endsAt": rfc3339(start + *duration),
                "createdBy": author,
                "comment": comment,
            });
            (Method::POST, base, Some(body))
        }
        SilenceAction::List { .. } => (Method::GET, base, None),
        SilenceAction::Expire { id } => (Method::DELETE, format!("{base}/{id}"), None),
    };
    let (method, url, body) = request;
    let response = match send(method, &url, token, body).await {
        Ok(response) => response,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(1);
        }
    };
    let (status, value) = response;
    if !status.is_success() {
        let detail = value
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| value.to_string(), str::to_owned);
        eprintln!("the daemon rejected the request with {status}: {detail}");
        return if status.is_client_error() {
            ExitCode::from(2)
        } else {
            ExitCode::from(1)
        };
    }
    match action {
        SilenceAction::Add { .. } => {
            println!("{}", value["silenceID"].as_str().unwrap_or_default());
        }
        SilenceAction::List { all, json } => print_list(&value, all, json),
        SilenceAction::Expire { id } => println!("silence {id} expired"),
    }
    ExitCode::SUCCESS
}

/// Sends one request and returns the status with the JSON body, or a message naming the failure.
async fn send(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(StatusCode, Value), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.map_err(|error| {
        format!("cannot reach loftwatch at {url}: {error}; check --server and that it runs")
    })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|error| format!("cannot read the answer of {url}: {error}"))?;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_owned()));
    Ok((status, value))
}

fn print_list(value: &Value, all: bool, as_json: bool) {
    let silences = value.as_array().cloned().unwrap_or_default();
    let shown: Vec<&Value> = silences
        .iter()
        .filter(|silence| all || silence["status"]["state"] != "expired")
        .collect();
    if as_json {
        println!("{}", Value::Array(shown.into_iter().cloned().collect()));
        return;
    }
    for silence in shown {
        let matchers: Vec<&str> = silence["matchers"]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{}  {:<8} until {}  by {}  [{}]  {}",
            silence["id"].as_str().unwrap_or_default(),
            silence["status"]["state"].as_str().unwrap_or_default(),
            silence["endsAt"].as_str().unwrap_or_default(),
            silence["createdBy"].as_str().unwrap_or_default(),
            matchers.join(", "),
            silence["comment"].as_str().unwrap_or_default(),
        );
    }
}

fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}
