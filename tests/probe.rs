//! The prober and the scheduler against small servers on 127.0.0.1, one per outcome.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loftwatch::config::{
    AuthConfig, JsonAssertion, JsonCheck, ProbeSpec, SalesloftConfig, Schedule, SecretSource,
};
use loftwatch::probe::{self, Outcome, ProbeEvent, RateLimit};
use loftwatch::salesloft::{Client, RetryPolicy, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

const TOKEN: &str = "test-token-5f1e";

/// What a test server does with each request.
#[derive(Clone)]
enum Reply {
    /// Writes these bytes and closes.
    Raw(Vec<u8>),
    /// Reads the request and never responds.
    Silent,
    /// Reads the request and closes without a response.
    Close,
    /// Sends headers, then one body byte per `every`, forever.
    Trickle { every: Duration },
    /// Sends a response with this status line and a body of `size` bytes.
    Huge {
        status: &'static str,
        size: usize,
        chunked: bool,
    },
}

/// Requests received by a test server, as text.
type Requests = Arc<Mutex<Vec<String>>>;

async fn serve(reply: Reply) -> (SocketAddr, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(answer(stream, reply.clone(), seen.clone()));
        }
    });
    (addr, requests)
}

async fn answer(mut stream: TcpStream, reply: Reply, requests: Requests) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
        // A TLS ClientHello starts with the handshake record type 0x16. Plain HTTP servers
        // respond to it with 400 Bad Request, and so does this one.
        if head.first() == Some(&0x16) {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            return;
        }
    }
    requests
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    match reply {
        Reply::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
        }
        Reply::Silent => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Close => {}
        Reply::Trickle { every } => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                tokio::time::sleep(every).await;
                if stream.write_all(b" ").await.is_err() {
                    return;
                }
            }
        }
        Reply::Huge {
            status,
            size,
            chunked,
        } => {
            let head = if chunked {
                format!("HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\n\r\n")
            } else {
                format!("HTTP/1.1 {status}\r\ncontent-length: {size}\r\n\r\n")
            };
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'x'; 16 * 1024];
            let mut sent = 0;
            while sent < size {
                let part = &block[..block.len().min(size - sent)];
                let written = if chunked {
                    let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
                    framed.extend_from_slice(part);
                    framed.extend_from_slice(b"\r\n");
                    stream.write_all(&framed).await
                } else {
                    stream.write_all(part).await
                };
                if written.is_err() {
                    return;
                }
                sent += part.len();
            }
        }
    }
}

fn response(status: &str, headers: &[&str], body: &str) -> Reply {
    let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    Reply::Raw(text.into_bytes())
}

fn json_200(body: &str) -> Reply {
    response("200 OK", &["content-type: application/json"], body)
}

fn client(base_url: &str) -> Client {
    let config = SalesloftConfig {
        base_url: base_url.to_owned(),
        credential: SecretSource::default(),
        location: Arc::from("test"),
        user_agent: "loftwatch-test/1".to_owned(),
        auth: AuthConfig::ApiKey,
        retry: RetryPolicy::never(),
        pause_on_429: true,
        breaker: Default::default(),
        budget: Default::default(),
        dns: Default::default(),
    };
    Client::new(&config, Secret::new(TOKEN)).unwrap()
}

fn spec() -> ProbeSpec {
    ProbeSpec {
        name: Arc::from("me"),
        method: "GET".to_owned(),
        path: "/v2/me.json".to_owned(),
        schedule: Schedule::Interval {
            every: Duration::from_secs(60),
            splay: Duration::ZERO,
        },
        timeout: Duration::from_secs(5),
        max_body: 64 * 1024,
        expect_status: vec![200],
        assertions: vec![
            JsonAssertion {
                path: "data.id".to_owned(),
                check: JsonCheck::Integer,
            },
            JsonAssertion {
                path: "data.email".to_owned(),
                check: JsonCheck::String,
            },
        ],
        latency_baseline: Duration::from_millis(300),
        priority: Default::default(),
    }
}

async fn probe_server(reply: Reply, spec: &ProbeSpec) -> probe::ProbeResult {
    let (addr, _) = serve(reply).await;
    probe::run(&client(&format!("http://{addr}")), spec).await
}

fn assert_no_token(result: &probe::ProbeResult) {
    let detail = result.detail.clone().unwrap_or_default();
    assert!(!detail.contains(TOKEN), "detail leaks the token: {detail}");
}

const ME: &str = r#"{"data":{"id":4,"email":"sam@example.com","name":"Sam"}}"#;

#[tokio::test]
async fn ok_response_sends_credentials_and_reads_rate_limit() {
    let reply = response(
        "200 OK",
        &[
            "x-ratelimit-endpoint-cost: 1",
            "x-ratelimit-remaining-minute: 599",
        ],
        ME,
    );
    let (addr, requests) = serve(reply).await;
    let result = probe::run(&client(&format!("http://{addr}/")), &spec()).await;

    assert_eq!(result.outcome, Outcome::Ok, "{:?}", result.detail);
    assert_eq!(result.status, Some(200));
    assert_eq!(
        result.rate_limit,
        RateLimit {
            cost: Some(1),
            remaining: Some(599)
        }
    );
    assert_eq!(result.attempts, 1);
    assert_eq!(result.detail, None);
    assert_eq!(&*result.probe, "me");
    assert!(result.latency > Duration::ZERO);
    assert!(result.latency < Duration::from_secs(5));

    let request = requests.lock().unwrap()[0].to_lowercase();
    assert!(
        request.starts_with("get /v2/me.json http/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("authorization: bearer {}", TOKEN.to_lowercase())),
        "{request}"
    );
    assert!(
        request.contains("user-agent: loftwatch-test/1"),
        "{request}"
    );
    assert!(request.contains("accept: application/json"), "{request}");
}

#[tokio::test]
async fn bad_rate_limit_headers_are_ignored() {
    let reply = response(
        "200 OK",
        &[
            "x-ratelimit-endpoint-cost: one",
            "x-ratelimit-remaining-minute: 12",
        ],
        ME,
    );
    let result = probe_server(reply, &spec()).await;
    assert_eq!(result.outcome, Outcome::Ok);
    assert_eq!(
        result.rate_limit,
        RateLimit {
            cost: None,
            remaining: Some(12)
        }
    );
}

#[tokio::test]
async fn unexpected_statuses_map_to_classes() {
    let cases = [
        ("503 Service Unavailable", Outcome::HttpStatus(5)),
        ("401 Unauthorized", Outcome::HttpStatus(4)),
        ("429 Too Many Requests", Outcome::HttpStatus(4)),
        ("302 Found", Outcome::HttpStatus(3)),
    ];
    for (status, expected) in cases {
        let reply = response(
            status,
            &["location: http://127.0.0.1:9/elsewhere"],
            r#"{"error":"x"}"#,
        );
        let result = probe_server(reply, &spec()).await;
        assert_eq!(result.outcome, expected, "{status}");
        let code: u16 = status[..3].parse().unwrap();
        assert_eq!(result.status, Some(code), "{status}");
        let detail = result.detail.unwrap_or_default();
        assert!(detail.contains(&code.to_string()), "{status}: {detail}");
    }
}

#[tokio::test]
async fn expected_non_200_status_is_ok() {
    let mut spec = spec();
    spec.expect_status = vec![200, 204];
    spec.assertions.clear();
    let result = probe_server(response("204 No Content", &[], ""), &spec).await;
    assert_eq!(result.outcome, Outcome::Ok, "{:?}", result.detail);
    assert_eq!(result.status, Some(204));
}

#[tokio::test]
async fn refused_port_is_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let result = probe::run(&client(&format!("http://{addr}")), &spec()).await;
    assert_eq!(result.outcome, Outcome::ConnectError, "{:?}", result.detail);
    assert_eq!(result.status, None);
    assert!(result.detail.is_some());
    assert_no_token(&result);
}

#[tokio::test]
async fn close_before_response_is_connect_error() {
    let result = probe_server(Reply::Close, &spec()).await;
    assert_eq!(result.outcome, Outcome::ConnectError, "{:?}", result.detail);
    assert_eq!(result.status, None);
}

#[tokio::test]
async fn silent_server_times_out() {
    let mut spec = spec();
    spec.timeout = Duration::from_millis(300);
    let result = probe_server(Reply::Silent, &spec).await;
    assert_eq!(result.outcome, Outcome::Timeout, "{:?}", result.detail);
    assert_eq!(result.status, None);
    assert!(
        result.latency >= Duration::from_millis(300),
        "{:?}",
        result.latency
    );
    assert!(
        result.latency < Duration::from_secs(3),
        "{:?}",
        result.latency
    );
    let detail = result.detail.unwrap();
    assert!(detail.contains("waiting for the response"), "{detail}");
}

#[tokio::test]
async fn slow_body_times_out_under_one_deadline() {
    let mut spec = spec();
    spec.timeout = Duration::from_millis(400);
    let reply = Reply::Trickle {
        every: Duration::from_millis(50),
    };
    let result = probe_server(reply, &spec).await;
    assert_eq!(result.outcome, Outcome::Timeout, "{:?}", result.detail);
    assert_eq!(result.status, Some(200));
    assert!(
        result.latency >= Duration::from_millis(400),
        "{:?}",
        result.latency
    );
    assert!(
        result.latency < Duration::from_secs(3),
        "{:?}",
        result.latency
    );
    let detail = result.detail.unwrap();
    assert!(detail.contains("waiting for the body"), "{detail}");
}

#[tokio::test]
async fn huge_body_is_too_large() {
    for chunked in [false, true] {
        let reply = Reply::Huge {
            status: "200 OK",
            size: 10 * 1024 * 1024,
            chunked,
        };
        let result = probe_server(reply, &spec()).await;
        assert_eq!(
            result.outcome,
            Outcome::BodyTooLarge,
            "chunked {chunked}: {:?}",
            result.detail
        );
        assert_eq!(result.status, Some(200));
        let detail = result.detail.unwrap();
        assert!(detail.contains("65536"), "{detail}");
    }
}

#[tokio::test]
async fn huge_error_body_keeps_status_class() {
    let reply = Reply::Huge {
        status: "503 Service Unavailable",
        size: 10 * 1024 * 1024,
        chunked: false,
    };
    let result = probe_server(reply, &spec()).await;
    assert_eq!(
        result.outcome,
        Outcome::HttpStatus(5),
        "{:?}",
        result.detail
    );
    assert_eq!(result.status, Some(503));
}

#[tokio::test]
async fn unexpected_status_quotes_body_start() {
    let body = r#"{"error":"No Bearer Token attached to request"}"#;
    let reply = response(
        "401 Unauthorized",
        &["content-type: application/json"],
        body,
    );
    let result = probe_server(reply, &spec()).await;
    assert_eq!(result.outcome, Outcome::HttpStatus(4));
    let detail = result.detail.unwrap();
    assert_eq!(
        detail,
        format!("unexpected status 401, expected [200]: {body}")
    );
}

#[tokio::test]
async fn body_at_cap_is_read() {
    let mut spec = spec();
    spec.assertions.clear();
    let body = format!(r#"{{"data":"{}"}}"#, "x".repeat(100));
    spec.max_body = body.len();
    let result = probe_server(json_200(&body), &spec).await;
    assert_eq!(result.outcome, Outcome::Ok, "{:?}", result.detail);
}

#[tokio::test]
async fn invalid_json_is_invalid_body() {
    let result = probe_server(json_200("<html>maintenance</html>"), &spec()).await;
    assert_eq!(result.outcome, Outcome::InvalidBody, "{:?}", result.detail);
    assert_eq!(result.status, Some(200));
    let detail = result.detail.unwrap();
    assert!(detail.contains("not valid JSON"), "{detail}");
}

#[tokio::test]
async fn failed_assertion_names_path_and_value() {
    let body = r#"{"data":{"id":"4","email":"sam@example.com"}}"#;
    let result = probe_server(json_200(body), &spec()).await;
    assert_eq!(result.outcome, Outcome::AssertionFailed);
    assert_eq!(
        result.detail.as_deref(),
        Some(r#"data.id: expected an integer, found string "4""#)
    );
}

#[tokio::test]
async fn missing_path_fails_assertion() {
    let result = probe_server(json_200(r#"{"data":{"id":4}}"#), &spec()).await;
    assert_eq!(result.outcome, Outcome::AssertionFailed);
    let detail = result.detail.unwrap();
    assert!(detail.starts_with("data.email:"), "{detail}");
    assert!(detail.contains("found nothing"), "{detail}");
}

#[tokio::test]
async fn detail_redacts_token_echoed_by_server() {
    let body = format!(r#"{{"data":{{"id":"{TOKEN}","email":"x"}}}}"#);
    let result = probe_server(json_200(&body), &spec()).await;
    assert_eq!(result.outcome, Outcome::AssertionFailed);
    assert_no_token(&result);
    assert!(result.detail.unwrap().contains("[redacted]"));
}

#[tokio::test]
async fn plain_port_for_https_is_tls_error() {
    let (addr, _) = serve(json_200(ME)).await;
    let result = probe::run(&client(&format!("https://{addr}")), &spec()).await;
    assert_eq!(result.outcome, Outcome::TlsError, "{:?}", result.detail);
    assert_eq!(result.status, None);
    assert_no_token(&result);
}

#[tokio::test]
async fn unresolvable_name_is_dns_failure() {
    let mut spec = spec();
    spec.timeout = Duration::from_secs(20);
    let result = probe::run(&client("http://nonexistent.invalid"), &spec).await;
    // The class depends on the host's resolver: glibc reports EAI_NONAME (dns_nxdomain) with
    // a reachable resolver and EAI_AGAIN (dns_timeout) without one.
    assert!(result.outcome.is_dns_failure(), "{:?}", result.detail);
    assert_eq!(result.status, None);
    let detail = result.detail.unwrap();
    assert!(detail.contains("nonexistent.invalid"), "{detail}");
}

#[tokio::test]
async fn spawned_probe_reports_results_until_shutdown() {
    let (addr, requests) = serve(json_200(ME)).await;
    let mut spec = spec();
    spec.schedule = Schedule::Interval {
        every: Duration::from_millis(200),
        splay: Duration::ZERO,
    };
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let client = Arc::new(client(&format!("http://{addr}")));
    let task = probe::spawn_probe(Arc::new(spec), client, events, shutdown);

    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap();
        match event {
            Some(ProbeEvent::Result(result)) => assert_eq!(result.outcome, Outcome::Ok),
            other => panic!("expected a result, got {other:?}"),
        }
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(requests.lock().unwrap().len() >= 2);
}
