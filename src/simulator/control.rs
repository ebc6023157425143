//! The control endpoint under `/_sim/`: faults, scenarios, budget, tokens and the request log.
//!
//! Bodies are JSON, except `POST /_sim/scenario`, which takes a scenario file (TOML). Control
//! requests need no token, are never faulted or charged, and are not logged.
//!
//! | method and path | effect |
//! |---|---|
//! | `GET /_sim/faults` | list faults in force with their ids |
//! | `POST /_sim/faults` | set a fault (a fault table), returns `{"id": N}` |
//! | `DELETE /_sim/faults` | stop scenarios and remove every fault |
//! | `DELETE /_sim/faults/{id}` | remove one fault |
//! | `POST /_sim/scenario` | play a scenario file from now |
//! | `GET /_sim/budget` | budget per minute, remaining units, `Retry-After` mode |
//! | `PUT /_sim/budget` | set `per_minute` and/or `retry_after` (`none`, `seconds`, `http_date`) |
//! | `POST /_sim/budget/consume` | spend `{"units": N}` as another client of the team |
//! | `POST /_sim/tokens` | `invalid`, `valid`, `refresh` token lists and `strict` mode |
//! | `GET /_sim/requests` | the request log |
//! | `DELETE /_sim/requests` | empty the request log and counters |
//! | `GET /_sim/stats` | requests per path and per status |

use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::fault::Fault;
use super::http::{Request, Response};
use super::log::RequestStats;
use super::ratelimit::RetryAfter;
use super::scenario::{self, Scenario};
use super::state::State;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetUpdate {
    per_minute: Option<u32>,
    retry_after: Option<RetryAfter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consume {
    units: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenUpdate {
    #[serde(default)]
    invalid: Vec<String>,
    #[serde(default)]
    valid: Vec<String>,
    #[serde(default)]
    refresh: Vec<String>,
    strict: Option<bool>,
}

fn ok(body: serde_json::Value) -> Response {
    Response::json(200, body.to_string())
}

fn bad_request(message: String) -> Response {
    Response::json(400, json!({ "error": message }).to_string())
}

fn parse_json<T: DeserializeOwned>(request: &Request) -> Result<T, Response> {
    serde_json::from_slice(&request.body)
        .map_err(|error| bad_request(format!("invalid JSON body: {error}")))
}

/// Applies a control request and builds its response.
pub fn respond(state: &Arc<State>, request: &Request) -> Response {
    let route = request.path.trim_end_matches('/');
    match (request.method.as_str(), route) {
        ("GET", "/_sim/faults") => ok(json!(state.lock().faults)),
        ("POST", "/_sim/faults") => match parse_json::<Fault>(request) {
            Ok(fault) => ok(json!({ "id": state.lock().add_fault(fault) })),
            Err(response) => response,
        },
        ("DELETE", "/_sim/faults") => {
            state.clear_faults();
            ok(json!({ "cleared": true }))
        }
        ("DELETE", path) if path.starts_with("/_sim/faults/") => {
            let id = path.trim_start_matches("/_sim/faults/");
            match id.parse() {
                Ok(id) if state.lock().remove_fault(id) => ok(json!({ "removed": id })),
                _ => Response::json(
                    404,
                    json!({ "error": format!("no fault has id {id:?}") }).to_string(),
                ),
            }
        }
        ("POST", "/_sim/scenario") => {
            let text = String::from_utf8_lossy(&request.body);
            match Scenario::from_toml(&text) {
                Ok(parsed) => {
                    let steps = parsed.steps.len();
                    scenario::play(state, parsed);
                    ok(json!({ "playing": true, "steps": steps }))
                }
                Err(error) => bad_request(error.to_string()),
            }
        }
        ("GET", "/_sim/budget") => budget_status(state),
        ("PUT", "/_sim/budget") => match parse_json::<BudgetUpdate>(request) {
            Ok(update) => {
                let mut inner = state.lock();
                if let Some(per_minute) = update.per_minute {
                    inner.budget.set_per_minute(per_minute);
                }
                if let Some(mode) = update.retry_after {
                    inner.retry_after = mode;
                }
                drop(inner);
                budget_status(state)
            }
            Err(response) => response,
        },
        ("POST", "/_sim/budget/consume") => match parse_json::<Consume>(request) {
            Ok(consume) => {
                let now = state.now_wall();
                let remaining = state.lock().budget.consume(now, consume.units);
                ok(json!({ "remaining": remaining }))
            }
            Err(response) => response,
        },
        ("POST", "/_sim/tokens") => match parse_json::<TokenUpdate>(request) {
            Ok(update) => {
                let mut inner = state.lock();
                inner.tokens.add_invalid(update.invalid);
                inner.tokens.add_valid(update.valid);
                inner.tokens.add_refresh(update.refresh);
                if let Some(strict) = update.strict {
                    inner.tokens.strict = strict;
                }
                ok(json!({ "strict": inner.tokens.strict }))
            }
            Err(response) => response,
        },
        ("GET", "/_sim/requests") => ok(json!({ "requests": state.lock().log })),
        ("DELETE", "/_sim/requests") => {
            let mut inner = state.lock();
            inner.log.clear();
            inner.stats = RequestStats::default();
            ok(json!({ "cleared": true }))
        }
        ("GET", "/_sim/stats") => ok(json!(state.lock().stats)),
        _ => Response::json(
            404,
            json!({ "error": format!("no control route {} {}", request.method, request.path) })
                .to_string(),
        ),
    }
}

fn budget_status(state: &State) -> Response {
    let now = state.now_wall();
    let mut inner = state.lock();
    let remaining = inner.budget.remaining(now);
    ok(json!({
        "per_minute": inner.budget.per_minute(),
        "remaining": remaining,
        "retry_after": inner.retry_after,
    }))
}
