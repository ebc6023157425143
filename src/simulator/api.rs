//! The SalesLoft v2 endpoints: authentication, cost budget and response bodies.
//!
//! Every `/v2` request needs a non-empty bearer token. An authenticated request is charged
//! against the team's budget and its response carries `x-ratelimit-endpoint-cost` and
//! `x-ratelimit-remaining-minute`. A request without a valid token identifies no team, so it is
//! neither charged nor given those headers.

use serde_json::{Value, json};

use super::http::{Request, Response};
use super::oauth;
use super::ratelimit::{self, page_cost};
use super::state::State;
use super::tokens::TokenRejection;

pub(crate) const ME: &str = include_str!("fixtures/me.json");
pub(crate) const TEAM: &str = include_str!("fixtures/team.json");
pub(crate) const PERSON: &str = include_str!("fixtures/person.json");
pub(crate) const CADENCE: &str = include_str!("fixtures/cadence.json");
pub(crate) const ACCOUNT: &str = include_str!("fixtures/account.json");
pub(crate) const ERROR_401_MISSING_TOKEN: &str =
    include_str!("fixtures/error_401_missing_token.json");
pub(crate) const ERROR_404: &str = include_str!("fixtures/error_404_not_found.json");
pub(crate) const ERROR_429: &str = include_str!("fixtures/error_429_rate_limited.json");

/// Number of records each list endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Catalog {
    /// Records of `/v2/people.json`.
    pub people: u64,
    /// Records of `/v2/cadences.json`.
    pub cadences: u64,
    /// Records of `/v2/accounts.json`.
    pub accounts: u64,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            people: 37,
            cadences: 5,
            accounts: 12,
        }
    }
}

/// Default `per_page` of list endpoints.
const DEFAULT_PER_PAGE: u64 = 25;
/// Largest `per_page` of list endpoints.
const MAX_PER_PAGE: u64 = 100;

enum Endpoint {
    Single(&'static str),
    List(ListKind),
    NotFound,
}

#[derive(Clone, Copy)]
enum ListKind {
    People,
    Cadences,
    Accounts,
}

/// Builds the response to an API request that no fault replaced.
pub fn respond(state: &State, request: &Request) -> Response {
    if request.path == "/oauth/token" {
        return oauth::respond(state, request);
    }
    let Some(token) = bearer_token(request) else {
        return Response::json(401, ERROR_401_MISSING_TOKEN);
    };
    let now = tokio::time::Instant::now();
    let mut inner = state.lock();
    if let Err(rejection) = inner.tokens.check_access(token, now) {
        let message = match rejection {
            TokenRejection::Invalid => "Invalid access token",
            TokenRejection::Expired => "Access token expired",
        };
        return Response::json(401, json!({ "error": message }).to_string());
    }
    let endpoint = route(&request.path);
    let page = corrected_page(request);
    let cost = match endpoint {
        Endpoint::List(_) => page_cost(page),
        Endpoint::Single(_) | Endpoint::NotFound => 1,
    };
    let wall = state.now_wall();
    let charge = inner.budget.charge(wall, cost);
    let retry_after = inner.retry_after;
    drop(inner);

    let response = if !charge.allowed {
        let response = Response::json(429, ERROR_429);
        match ratelimit::retry_after_value(retry_after, wall) {
            Some(value) => response.with_header("retry-after", value),
            None => response,
        }
    } else if request.method != "GET" && !matches!(endpoint, Endpoint::NotFound) {
        Response::json(405, json!({ "error": "Method Not Allowed" }).to_string())
    } else {
        match endpoint {
            Endpoint::Single(body) => Response::json(200, body),
            Endpoint::List(kind) => {
                Response::json(200, list_body(&state.catalog, kind, request, page))
            }
            Endpoint::NotFound => Response::json(404, ERROR_404),
        }
    };
    response
        .with_header("x-ratelimit-endpoint-cost", charge.cost.to_string())
        .with_header("x-ratelimit-remaining-minute", charge.remaining.to_string())
}

/// Returns the bearer token when the request has a non-empty one.
pub fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn route(path: &str) -> Endpoint {
    let path = path.strip_suffix(".json").unwrap_or(path);
    match path {
        "/v2/me" => Endpoint::Single(ME),
        "/v2/team" => Endpoint::Single(TEAM),
        "/v2/people" => Endpoint::List(ListKind::People),
        "/v2/cadences" => Endpoint::List(ListKind::Cadences),
        "/v2/accounts" => Endpoint::List(ListKind::Accounts),
        _ => Endpoint::NotFound,
    }
}

fn corrected_page(request: &Request) -> u64 {
    let page = request
        .query_param("page")
        .and_then(|value| value.parse::<i64>().ok());
    page.unwrap_or(1).max(1) as u64
}

fn corrected_per_page(request: &Request) -> u64 {
    let per_page = request
        .query_param("per_page")
        .and_then(|value| value.parse::<i64>().ok());
    match per_page {
        None => DEFAULT_PER_PAGE,
        Some(value) => value.clamp(1, MAX_PER_PAGE as i64) as u64,
    }
}

fn list_body(catalog: &Catalog, kind: ListKind, request: &Request, page: u64) -> String {
    let per_page = corrected_per_page(request);
    let total = match kind {
        ListKind::People => catalog.people,
        ListKind::Cadences => catalog.cadences,
        ListKind::Accounts => catalog.accounts,
    };
    let total_pages = total.div_ceil(per_page);
    let first = (page - 1).saturating_mul(per_page);
    let last = first.saturating_add(per_page).min(total);
    let data: Vec<Value> = (first..last).map(|index| record(kind, index + 1)).collect();

    let mut paging = json!({
        "per_page": per_page,
        "current_page": page,
        "next_page": if page < total_pages { Some(page + 1) } else { None },
        "prev_page": if page > 1 { Some(page - 1) } else { None },
    });
    if request.query_param("include_paging_counts") == Some("true") {
        paging["total_pages"] = json!(total_pages);
        paging["total_count"] = json!(total);
    }
    json!({
        "metadata": {
            "filtering": {},
            "paging": paging,
            "sorting": { "sort_by": "updated_at", "sort_direction": "DESC NULLS LAST" },
        },
        "data": data,
    })
    .to_string()
}

const FIRST_NAMES: [&str; 6] = ["Jordan", "Avery", "Casey", "Morgan", "Riley", "Quinn"];
const LAST_NAMES: [&str; 5] = ["Placeholder", "Example", "Sample", "Testcase", "Mockley"];

/// Builds the `number`-th record (from 1) of a list from its fixture.
fn record(kind: ListKind, number: u64) -> Value {
    match kind {
        ListKind::People => {
            let mut person: Value = serde_json::from_str(PERSON).expect("person fixture is JSON");
            let first = FIRST_NAMES[(number as usize - 1) % FIRST_NAMES.len()];
            let last = LAST_NAMES[(number as usize - 1) % LAST_NAMES.len()];
            let email = format!(
                "{}.{}{number}@example.org",
                first.to_lowercase(),
                last.to_lowercase()
            );
            person["id"] = json!(300_000_000 + number);
            person["first_name"] = json!(first);
            person["last_name"] = json!(last);
            person["display_name"] = json!(format!("{first} {last}"));
            person["full_email_address"] = json!(format!("\"{first} {last}\" <{email}>"));
            person["email_address"] = json!(email);
            person
        }
        ListKind::Cadences => {
            let mut cadence: Value =
                serde_json::from_str(CADENCE).expect("cadence fixture is JSON");
            cadence["id"] = json!(800_000 + number);
            cadence["name"] = json!(format!("Outbound sequence {number}"));
            cadence
        }
        ListKind::Accounts => {
            let mut account: Value =
                serde_json::from_str(ACCOUNT).expect("account fixture is JSON");
            account["id"] = json!(600_000 + number);
            account["name"] = json!(format!("Example Account {number}"));
            account["domain"] = json!(format!("account{number}.example.org"));
            account
        }
    }
}
