//! Integration tests of the SalesLoft simulator over real loopback TCP connections.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loftwatch::simulator::{
    self, DEFAULT_REFRESH_TOKEN, Delay, Fault, FaultEffect, RetryAfter, Scenario, SimulatorHandle,
    SimulatorOptions,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "v2_ak_50001_test";

async fn start_with(options: SimulatorOptions) -> SimulatorHandle {
    simulator::start("127.0.0.1:0".parse().unwrap(), options.seed(42))
        .await
        .expect("simulator binds a loopback port")
}

async fn start() -> SimulatorHandle {
    start_with(SimulatorOptions::default()).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(sim: &SimulatorHandle, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request succeeds")
}

async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("body is readable");
    serde_json::from_str(&text).expect("body is JSON")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

fn cost_and_remaining(response: &reqwest::Response) -> (u32, u32) {
    let cost = header(response, "x-ratelimit-endpoint-cost").expect("cost header");
    let remaining = header(response, "x-ratelimit-remaining-minute").expect("remaining header");
    (cost.parse().unwrap(), remaining.parse().unwrap())
}

/// Waits until at least 10 s remain in the calendar minute, so the budget of a test does not
/// refill midway.
async fn away_from_minute_boundary() {
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second >= 50 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
}

async fn control(sim: &SimulatorHandle, method: &str, path: &str, body: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client()
        .request(method, format!("{}{path}", sim.base_url()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("control request succeeds");
    let status = response.status().as_u16();
    (status, json_of(response).await)
}

/// Sends `request` on a raw connection and returns (status, body), reading by Content-Length.
async fn raw_exchange(stream: &mut TcpStream, request: &str) -> (u16, Vec<u8>) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed before the response head");
        buffer.extend_from_slice(&chunk[..read]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = parsed.parse(&buffer).unwrap() {
            let length: usize = parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            let status = parsed.code.unwrap();
            while buffer.len() < head + length {
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "connection closed inside the body");
                buffer.extend_from_slice(&chunk[..read]);
            }
            return (status, buffer[head..head + length].to_vec());
        }
    }
}

fn raw_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {TOKEN}\r\n\r\n")
}

#[tokio::test]
async fn me_carries_rate_limit_headers() {
    away_from_minute_boundary().await;
    let sim = start().await;
    let response = get(&sim, "/v2/me.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(cost_and_remaining(&response), (1, 599));
    let body = json_of(response).await;
    assert!(body["data"]["id"].is_i64());
    assert!(body["data"]["email"].is_string());

    let bare = get(&sim, "/v2/me").await;
    assert_eq!(bare.status(), 200);
    assert_eq!(cost_and_remaining(&bare), (1, 598));
    let team = get(&sim, "/v2/team.json").await;
    assert!(json_of(team).await["data"]["id"].is_i64());
}

#[tokio::test]
async fn missing_token_gets_401() {
    let sim = start().await;
    let url = format!("{}/v2/me.json", sim.base_url());
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(header(&response, "x-ratelimit-remaining-minute"), None);
    let body = json_of(response).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("No Bearer Token")
    );

    let empty = client()
        .get(&url)
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 401);
    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|entry| !entry.token_present));
}

#[tokio::test]
async fn people_paging_is_corrected_and_echoed() {
    let sim = start().await;
    let body = json_of(
        get(
            &sim,
            "/v2/people.json?per_page=1&include_paging_counts=true",
        )
        .await,
    )
    .await;
    let paging = &body["metadata"]["paging"];
    assert_eq!(paging["per_page"], 1);
    assert_eq!(paging["total_count"], 37);
    assert_eq!(paging["total_pages"], 37);
    assert_eq!(paging["next_page"], 2);
    assert!(paging["prev_page"].is_null());
    assert_eq!(body["data"].as_array().unwrap().len(), 1);

    let default = json_of(get(&sim, "/v2/people.json").await).await;
    assert_eq!(default["metadata"]["paging"]["per_page"], 25);
    assert!(default["metadata"]["paging"].get("total_count").is_none());
    assert_eq!(default["data"].as_array().unwrap().len(), 25);

    let too_big = json_of(get(&sim, "/v2/people.json?per_page=500").await).await;
    assert_eq!(too_big["metadata"]["paging"]["per_page"], 100);
    let too_small = json_of(get(&sim, "/v2/people.json?per_page=0").await).await;
    assert_eq!(too_small["metadata"]["paging"]["per_page"], 1);

    let past_end = json_of(get(&sim, "/v2/people.json?page=3").await).await;
    assert_eq!(past_end["data"], Value::Array(Vec::new()));
    assert!(past_end["metadata"]["paging"]["next_page"].is_null());

    for path in ["/v2/cadences.json?per_page=1", "/v2/accounts?per_page=1"] {
        let list = json_of(get(&sim, path).await).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{path}");
    }
}

#[tokio::test]
async fn deep_pages_cost_more() {
    away_from_minute_boundary().await;
    let sim = start().await;
    let mut expected_remaining = 600;
    for (page, cost) in [(1, 1), (100, 1), (101, 3), (151, 8), (251, 10), (501, 30)] {
        let response = get(&sim, &format!("/v2/people.json?page={page}")).await;
        expected_remaining -= cost;
        assert_eq!(
            cost_and_remaining(&response),
            (cost, expected_remaining),
            "page {page}"
        );
    }
    let unknown = get(&sim, "/v2/unknown.json").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(cost_and_remaining(&unknown), (1, expected_remaining - 1));
}

#[tokio::test]
async fn exhausted_budget_gets_429() {
    away_from_minute_boundary().await;
    let sim = start_with(SimulatorOptions::default().budget_per_minute(3)).await;
    for remaining in [2, 1, 0] {
        let response = get(&sim, "/v2/me.json").await;
        assert_eq!(response.status(), 200);
        assert_eq!(cost_and_remaining(&response), (1, remaining));
    }
    let limited = get(&sim, "/v2/me.json").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(cost_and_remaining(&limited), (1, 0));
    assert_eq!(header(&limited, "retry-after"), None);
    assert_eq!(json_of(limited).await["error"], "Rate limit exceeded");
    assert_eq!(sim.stats().status(429), 1);
    assert_eq!(sim.stats().status(200), 3);
}

#[tokio::test]
async fn retry_after_when_requested() {
    away_from_minute_boundary().await;
    let sim = start().await;
    let (status, body) = control(&sim, "POST", "/_sim/budget/consume", r#"{"units": 600}"#).await;
    assert_eq!(status, 200);
    assert_eq!(body["remaining"], 0);

    sim.set_retry_after(RetryAfter::Seconds);
    let seconds: u64 = header(&get(&sim, "/v2/me.json").await, "retry-after")
        .expect("retry-after header")
        .parse()
        .expect("delta-seconds");
    assert!((1..=60).contains(&seconds), "retry-after {seconds}");

    let (status, _) = control(
        &sim,
        "PUT",
        "/_sim/budget",
        r#"{"retry_after": "http_date"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let limited = get(&sim, "/v2/me.json").await;
    assert_eq!(limited.status(), 429);
    let date = httpdate::parse_http_date(&header(&limited, "retry-after").unwrap()).unwrap();
    let reset = date.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(reset % 60, 0);
    let wait = date.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(60),
        "retry-after {wait:?} ahead"
    );
}

#[tokio::test]
async fn status_faults_fixed_and_cycled() {
    let sim = start().await;
    let fixed = sim.set_fault(Fault::new(Some("/v2/me"), FaultEffect::Status(vec![503])));
    assert_eq!(get(&sim, "/v2/me.json").await.status(), 503);
    assert_eq!(get(&sim, "/v2/team.json").await.status(), 200);
    assert!(sim.remove_fault(fixed));

    sim.set_fault(Fault::new(None, FaultEffect::Status(vec![500, 502])));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&sim, "/v2/team.json").await.status().as_u16());
    }
    assert_eq!(statuses, [500, 502, 500]);
    sim.clear_faults();
    assert_eq!(get(&sim, "/v2/team.json").await.status(), 200);
}

#[tokio::test]
async fn status_fault_share_hits_part() {
    let sim = start().await;
    sim.set_fault(Fault::new(None, FaultEffect::Status(vec![500])).with_share(0.5));
    for _ in 0..200 {
        get(&sim, "/v2/me.json").await;
    }
    let failed = sim.stats().status(500);
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    assert_eq!(sim.stats().path("/v2/me"), 200);
}

#[tokio::test]
async fn latency_fault_delays_headers() {
    let sim = start().await;
    sim.set_fault(Fault::new(
        None,
        FaultEffect::Latency(Delay::Fixed(Duration::from_millis(300))),
    ));
    let started = tokio::time::Instant::now();
    assert_eq!(get(&sim, "/v2/me.json").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    sim.clear_faults();

    let uniform = r#"{"kind": "latency", "latency_min": "200ms", "latency_max": "250ms"}"#;
    let (status, _) = control(&sim, "POST", "/_sim/faults", uniform).await;
    assert_eq!(status, 200);
    let started = tokio::time::Instant::now();
    get(&sim, "/v2/me.json").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn slow_body_trickles_after_headers() {
    let sim = start().await;
    sim.set_fault(Fault::new(
        None,
        FaultEffect::SlowBody(Duration::from_millis(500)),
    ));
    let response = get(&sim, "/v2/me.json").await;
    let headers_at = tokio::time::Instant::now();
    let body = json_of(response).await;
    assert!(headers_at.elapsed() >= Duration::from_millis(450));
    assert!(body["data"]["id"].is_i64());
}

#[tokio::test]
async fn hang_never_answers() {
    let sim = start().await;
    sim.set_fault(Fault::new(Some("/v2/me.json"), FaultEffect::Hang));
    let error = reqwest::Client::new()
        .get(format!("{}/v2/me.json", sim.base_url()))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("hung request times out");
    assert!(error.is_timeout(), "{error}");
    assert_eq!(sim.requests()[0].status, None);
    assert_eq!(sim.requests()[0].fault.as_deref(), Some("hang"));
}

#[tokio::test]
async fn reset_sends_rst() {
    let sim = start().await;
    sim.set_fault(Fault::new(None, FaultEffect::Reset));
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    stream
        .write_all(raw_get("/v2/me.json").as_bytes())
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let error = stream
        .read(&mut buffer)
        .await
        .expect_err("read sees the reset");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn close_without_reply() {
    let sim = start().await;
    sim.set_fault(Fault::new(None, FaultEffect::Close));
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    stream
        .write_all(raw_get("/v2/me.json").as_bytes())
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    assert_eq!(stream.read(&mut buffer).await.unwrap(), 0);
    assert_eq!(sim.stats().unanswered, 1);
}

#[tokio::test]
async fn malformed_json_fails_to_parse() {
    let sim = start().await;
    sim.set_fault(Fault::new(None, FaultEffect::MalformedJson));
    let response = get(&sim, "/v2/me.json").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn oversized_body_has_requested_size() {
    let sim = start().await;
    sim.set_fault(Fault::new(None, FaultEffect::OversizedBody(1_000_000)));
    let text = get(&sim, "/v2/me.json").await.text().await.unwrap();
    assert_eq!(text.len(), 1_000_000);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["data"]["id"].is_i64());
}

#[tokio::test]
async fn oversized_body_over_cap_rejected() {
    let sim = start().await;
    let (status, body) = control(
        &sim,
        "POST",
        "/_sim/faults",
        r#"{"kind": "oversized_body", "bytes": 99999999999999}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("bytes"), "{message}");
    assert!(message.contains("99999999999999"), "{message}");
    assert!(message.contains("256 MiB"), "{message}");
    let (_, listed) = control(&sim, "GET", "/_sim/faults", "").await;
    assert_eq!(listed, serde_json::json!([]));
    assert_eq!(get(&sim, "/v2/me.json").await.status(), 200);

    let at_cap = format!(
        r#"{{"kind": "oversized_body", "path": "/v2/team", "bytes": {}}}"#,
        simulator::MAX_OVERSIZED_BODY_BYTES
    );
    let (status, body) = control(&sim, "POST", "/_sim/faults", &at_cap).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn oversized_body_of_20_mib_parses() {
    let sim = start().await;
    let bytes = 20 * 1024 * 1024 + 3;
    sim.set_fault(Fault::new(None, FaultEffect::OversizedBody(bytes)));
    let response = get(&sim, "/v2/people.json").await;
    assert_eq!(header(&response, "content-length"), Some(bytes.to_string()));
    let text = response.text().await.unwrap();
    assert_eq!(text.len(), bytes);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["data"].is_array());
    assert!(
        body["padding"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|byte| byte == b'x')
    );
}

#[tokio::test]
async fn keep_alive_serves_several_requests() {
    let sim = start().await;
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    for path in ["/v2/me.json", "/v2/team", "/_sim/stats"] {
        let (status, body) = raw_exchange(&mut stream, &raw_get(path)).await;
        assert_eq!(status, 200, "{path}");
        assert!(serde_json::from_slice::<Value>(&body).is_ok(), "{path}");
    }
    assert_eq!(sim.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn scenario_timeline_on_paused_clock() {
    let scenario = Scenario::from_toml(
        r#"
        name = "me outage"

        [[step]]
        at = "10s"
        duration = "20s"
        kind = "status"
        path = "/v2/me.json"
        status = 503

        [[step]]
        at = 15
        kind = "latency"
        latency_mean = "200ms"
        latency_std_dev = "50ms"
        "#,
    )
    .unwrap();
    let sim = start().await;
    sim.play(scenario);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(sim.faults().is_empty());
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(sim.faults().len(), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sim.faults().len(), 2);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let faults = sim.faults();
    assert_eq!(faults.len(), 1);
    assert!(matches!(
        faults[0].fault.effect,
        FaultEffect::Latency(Delay::Normal { .. })
    ));
}

#[tokio::test]
async fn scenario_over_control_endpoint() {
    let sim = start().await;
    let timeline = "[[step]]\nat = \"0s\"\nduration = \"400ms\"\nkind = \"status\"\nstatus = 502\n";
    let response = client()
        .post(format!("{}/_sim/scenario", sim.base_url()))
        .body(timeline)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&sim, "/v2/me.json").await.status(), 502);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(&sim, "/v2/me.json").await.status(), 200);
}

#[test]
fn scenario_errors_name_step_and_key() {
    let cases = [
        (
            "[[step]]\nat = \"1s\"\nkind = \"hang\"\n[[step]]\nat = 2\nkind = \"status\"\nstaus = 5",
            "step 2: key `staus`",
        ),
        ("[[step]]\nkind = \"hang\"", "step 1: key `at`"),
        (
            "[[step]]\nat = \"soon\"\nkind = \"hang\"",
            "step 1: key `at`",
        ),
        (
            "[[step]]\nat = 1\nkind = \"status\"\nstatus = \"503\"",
            "step 1: key `status`",
        ),
        ("[[step]]\nat = 1\nkind = \"explode\"", "step 1: key `kind`"),
        (
            "[[step]]\nat = 1\nkind = \"reset\"\nshare = 1.5",
            "step 1: key `share`",
        ),
        (
            "[[step]]\nat = 1\nkind = \"latency\"\nlatency = \"fast\"",
            "step 1: key `latency`",
        ),
        (
            "[[step]]\nat = 1\nkind = \"oversized_body\"",
            "step 1: key `bytes`",
        ),
        (
            "[[step]]\nat = 1\nkind = \"status\"\nstatus = 70000",
            "step 1: key `status`",
        ),
        (
            "[[step]]\nat = 1\nkind = \"status\"\nstatuses = [500, -1]",
            "step 1: key `statuses`",
        ),
        ("name = \"empty\"", "no steps"),
    ];
    for (text, expected) in cases {
        let error = Scenario::from_toml(text).expect_err(text).to_string();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
    }
}

#[test]
fn fault_json_round_trips() {
    let faults = [
        Fault::new(Some("/v2/me.json"), FaultEffect::Status(vec![500, 503])).with_share(0.25),
        Fault::new(
            None,
            FaultEffect::Latency(Delay::Uniform {
                min: Duration::from_millis(10),
                max: Duration::from_millis(20),
            }),
        ),
        Fault::new(None, FaultEffect::SlowBody(Duration::from_secs(2))),
        Fault::new(None, FaultEffect::OversizedBody(4096)),
    ];
    for fault in faults {
        let text = serde_json::to_string(&fault).unwrap();
        let back: Fault = serde_json::from_str(&text).unwrap();
        assert_eq!(back, fault, "{text}");
    }
}

#[tokio::test]
async fn control_faults_add_list_remove() {
    let sim = start().await;
    let (status, body) = control(
        &sim,
        "POST",
        "/_sim/faults",
        r#"{"kind": "status", "path": "/v2/team", "status": 500}"#,
    )
    .await;
    assert_eq!(status, 200);
    let id = body["id"].as_u64().unwrap();
    let (_, listed) = control(&sim, "GET", "/_sim/faults", "").await;
    assert_eq!(listed[0]["id"], id);
    assert_eq!(get(&sim, "/v2/team.json").await.status(), 500);
    let (status, _) = control(&sim, "DELETE", &format!("/_sim/faults/{id}"), "").await;
    assert_eq!(status, 200);
    assert_eq!(get(&sim, "/v2/team.json").await.status(), 200);

    let (status, body) = control(
        &sim,
        "POST",
        "/_sim/faults",
        r#"{"kind": "status", "share": 2}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("share"), "{body}");
}

#[tokio::test]
async fn oauth_refresh_rotates() {
    let sim = start().await;
    let url = format!("{}/oauth/token", sim.base_url());
    let form = format!(
        "grant_type=refresh_token&refresh_token={DEFAULT_REFRESH_TOKEN}&client_id=id&client_secret=secret"
    );
    let post = |body: String, content_type: &'static str| {
        client()
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let first = post(form.clone(), "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let grant = json_of(first).await;
    for key in ["access_token", "refresh_token", "scope"] {
        assert!(grant[key].is_string(), "{key} in {grant}");
    }
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(grant["expires_in"], 7200);
    assert!(grant["created_at"].is_u64());
    assert_ne!(grant["refresh_token"], DEFAULT_REFRESH_TOKEN);

    let reused = post(form, "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(reused.status(), 400);
    assert_eq!(json_of(reused).await["error"], "invalid_grant");

    let json_body = serde_json::json!({
        "grant_type": "refresh_token",
        "refresh_token": grant["refresh_token"],
        "client_id": "id",
        "client_secret": "secret",
    });
    let second = post(json_body.to_string(), "application/json")
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let access = json_of(second).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    sim.set_strict_tokens(true);
    assert_eq!(get(&sim, "/v2/me.json").await.status(), 401);
    let issued = client()
        .get(format!("{}/v2/me.json", sim.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 200);
}

#[tokio::test]
async fn invalidated_token_gets_401() {
    let sim = start().await;
    let (status, _) = control(
        &sim,
        "POST",
        "/_sim/tokens",
        &format!(r#"{{"invalid": ["{TOKEN}"]}}"#),
    )
    .await;
    assert_eq!(status, 200);
    let rejected = get(&sim, "/v2/me.json").await;
    assert_eq!(rejected.status(), 401);
    assert!(json_of(rejected).await["error"].is_string());
    let other = client()
        .get(format!("{}/v2/me.json", sim.base_url()))
        .bearer_auth("another-key")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn request_log_over_control_endpoint() {
    let sim = start().await;
    get(&sim, "/v2/me").await;
    get(&sim, "/v2/people.json?per_page=1").await;
    let (_, body) = control(&sim, "GET", "/_sim/requests", "").await;
    let requests = body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["method"], "GET");
    assert_eq!(requests[0]["path"], "/v2/me");
    assert_eq!(requests[1]["path"], "/v2/people.json");
    assert_eq!(requests[1]["status"], 200);
    assert_eq!(requests[1]["token_present"], true);
    let received_at = requests[1]["received_at"].as_str().unwrap();
    let received_at = chrono::DateTime::parse_from_rfc3339(received_at)
        .unwrap_or_else(|error| panic!("received_at {received_at:?}: {error}"));
    let age = chrono::Utc::now().signed_duration_since(received_at);
    assert!(
        age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::seconds(60),
        "received_at {received_at} is not recent"
    );
    assert!(requests[1]["elapsed_ms"].as_u64().is_some());

    let (_, stats) = control(&sim, "GET", "/_sim/stats", "").await;
    assert_eq!(stats["by_path"]["/v2/me.json"], 1);
    assert_eq!(stats["by_status"]["200"], 2);
    let (status, _) = control(&sim, "DELETE", "/_sim/requests", "").await;
    assert_eq!(status, 200);
    assert!(sim.requests().is_empty());
}
