//! DNS failures classified apart from API failures: the prober resolves the API host through a
//! fake DNS server on 127.0.0.1 that answers, stays silent, or answers SERVFAIL or NXDOMAIN.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loftwatch::config::{AuthConfig, ProbeSpec, SalesloftConfig, Schedule, SecretSource};
use loftwatch::probe::{self, Outcome, ProbeResult};
use loftwatch::salesloft::{Client, DnsSettings, RetryPolicy, Secret};
use loftwatch::stats::{Filter, Recorder, StatusOp};
use loftwatch::telemetry::PrometheusMetrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;

const HOST: &str = "catalog.test";
const ME: &str = r#"{"data":{"id":4,"email":"sam@example.com"}}"#;
/// DNS deadline of the test's client.
const DNS_TIMEOUT: Duration = Duration::from_secs(1);
/// Total deadline of one probe attempt.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fake DNS server does with one query.
#[derive(Debug, Clone, Copy)]
enum DnsReply {
    /// NOERROR with one A record.
    Address(Ipv4Addr),
    /// No response at all.
    Silent,
    /// Response code 2.
    Servfail,
    /// Response code 3.
    Nxdomain,
}

/// One query as the fake DNS server received it.
#[derive(Debug, Clone, PartialEq)]
struct Query {
    id: u16,
    name: String,
    qtype: u16,
}

/// Starts a DNS server on 127.0.0.1 that answers the n-th new query id with `script[n]`. A
/// resent query keeps the id, and so the reply, of the first.
async fn fake_dns(script: Vec<DnsReply>) -> (SocketAddr, Arc<Mutex<Vec<Query>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let queries: Arc<Mutex<Vec<Query>>> = Arc::default();
    let seen = queries.clone();
    tokio::spawn(async move {
        let mut replies: HashMap<u16, DnsReply> = HashMap::new();
        let mut buffer = [0u8; 512];
        loop {
            let (length, peer) = socket.recv_from(&mut buffer).await.unwrap();
            let packet = &buffer[..length];
            let (query, question_end) = parse_query(packet);
            let next = replies.len();
            let reply = *replies.entry(query.id).or_insert_with(|| {
                *script
                    .get(next)
                    .unwrap_or_else(|| panic!("query {} past the script", next + 1))
            });
            seen.lock().unwrap().push(query.clone());
            if let Some(response) = build_response(&packet[..question_end], query.qtype, reply) {
                socket.send_to(&response, peer).await.unwrap();
            }
        }
    });
    (addr, queries)
}

/// Reads the id and the question of a query; returns it and the end of the question.
fn parse_query(packet: &[u8]) -> (Query, usize) {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    assert_eq!(
        u16::from_be_bytes([packet[4], packet[5]]),
        1,
        "one question"
    );
    let mut labels = Vec::new();
    let mut at = 12;
    while packet[at] != 0 {
        let length = usize::from(packet[at]);
        labels.push(String::from_utf8(packet[at + 1..at + 1 + length].to_vec()).unwrap());
        at += 1 + length;
    }
    at += 1;
    let qtype = u16::from_be_bytes([packet[at], packet[at + 1]]);
    let query = Query {
        id,
        name: labels.join("."),
        qtype,
    };
    (query, at + 4)
}

/// Builds the response to `question` (header and question section of the query), or `None`
/// for a silent reply.
fn build_response(question: &[u8], qtype: u16, reply: DnsReply) -> Option<Vec<u8>> {
    let rcode = match reply {
        DnsReply::Address(_) => 0,
        DnsReply::Silent => return None,
        DnsReply::Servfail => 2,
        DnsReply::Nxdomain => 3,
    };
    let mut response = question.to_vec();
    response[2] = 0x81; // QR, RD
    response[3] = 0x80 | rcode; // RA
    if let DnsReply::Address(ip) = reply {
        // Only A questions have an address; an AAAA question gets an empty answer.
        if qtype == 1 {
            response[7] = 1;
            // Owner name as a pointer to the question, type A, class IN, TTL 60, 4 bytes.
            response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            response.extend_from_slice(&ip.octets());
        }
    }
    Some(response)
}

/// Starts an HTTP server on 127.0.0.1 that answers every request with 200 and `ME` after
/// 50 ms; returns its address and the request count.
async fn slow_api() -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests: Arc<Mutex<usize>> = Arc::default();
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                *counted.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{ME}",
                    ME.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, requests)
}

fn client(base_url: &str, dns_server: SocketAddr) -> Client {
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
        dns: DnsSettings {
            server: Some(dns_server),
            timeout: DNS_TIMEOUT,
        },
    };
    Client::new(&config, Secret::new("test-token-dns")).unwrap()
}

fn spec() -> ProbeSpec {
    ProbeSpec {
        name: Arc::from("catalog"),
        method: "GET".to_owned(),
        path: "/v2/me.json".to_owned(),
        schedule: Schedule::Interval {
            every: Duration::from_secs(60),
            splay: Duration::ZERO,
        },
        timeout: PROBE_TIMEOUT,
        max_body: 64 * 1024,
        expect_status: vec![200],
        assertions: Vec::new(),
        latency_baseline: Duration::from_millis(300),
        priority: Default::default(),
    }
}

/// Runs the 12 probes of the script and returns each result with its wall time.
async fn run_script(script: Vec<DnsReply>) -> (Vec<(ProbeResult, Duration)>, Vec<Query>, usize) {
    let (dns, queries) = fake_dns(script.clone()).await;
    let (api, requests) = slow_api().await;
    let client = client(&format!("http://{HOST}:{}", api.port()), dns);
    let spec = spec();
    let mut results = Vec::new();
    for _ in &script {
        let started = Instant::now();
        let result = probe::run(&client, &spec).await;
        results.push((result, started.elapsed()));
    }
    let queries = queries.lock().unwrap().clone();
    let requests = *requests.lock().unwrap();
    (results, queries, requests)
}

fn script() -> Vec<DnsReply> {
    use DnsReply::*;
    let local = Address(Ipv4Addr::LOCALHOST);
    vec![
        local, local, local, local, Silent, Silent, Servfail, Servfail, Nxdomain, local, local,
        local,
    ]
}

#[tokio::test]
async fn dns_failures_are_classified() {
    let (results, queries, requests) = run_script(script()).await;

    let outcomes: Vec<Outcome> = results.iter().map(|(result, _)| result.outcome).collect();
    let expected = [
        Outcome::Ok,
        Outcome::Ok,
        Outcome::Ok,
        Outcome::Ok,
        Outcome::DnsTimeout,
        Outcome::DnsTimeout,
        Outcome::DnsServfail,
        Outcome::DnsServfail,
        Outcome::DnsNxdomain,
        Outcome::Ok,
        Outcome::Ok,
        Outcome::Ok,
    ];
    let details: Vec<_> = results.iter().map(|(result, _)| &result.detail).collect();
    assert_eq!(outcomes, expected, "{details:#?}");
    assert_eq!(requests, 7, "only resolved probes reach the API");

    for (result, _) in &results {
        if result.outcome.is_dns_failure() {
            assert_eq!(result.status, None, "{:?}", result.detail);
            let detail = result.detail.as_deref().unwrap_or_default();
            assert!(detail.contains(HOST), "{detail}");
        } else {
            assert_eq!(result.status, Some(200));
        }
    }

    // Every query asked for the A record of the host; a silent query was resent once with
    // its id, so 12 probes sent 12 distinct ids.
    assert!(
        queries
            .iter()
            .all(|query| query.name == HOST && query.qtype == 1)
    );
    let mut ids: Vec<u16> = queries.iter().map(|query| query.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "{queries:?}");
    assert_eq!(queries.len(), 14, "{queries:?}");
}

#[tokio::test]
async fn dns_timeout_ends_before_probe_timeout() {
    let (results, _, _) = run_script(script()).await;
    for (result, elapsed) in &results {
        match result.outcome {
            Outcome::DnsTimeout => {
                assert!(*elapsed >= DNS_TIMEOUT, "{elapsed:?}");
                // Generous bound for a loaded machine, still well below the 5 s probe timeout.
                assert!(*elapsed < DNS_TIMEOUT * 3, "{elapsed:?}");
                let detail = result.detail.as_deref().unwrap_or_default();
                assert!(detail.contains("within 1s"), "{detail}");
            }
            Outcome::DnsServfail | Outcome::DnsNxdomain => {
                assert!(*elapsed < DNS_TIMEOUT, "{elapsed:?}");
            }
            _ => assert!(*elapsed >= Duration::from_millis(50), "{elapsed:?}"),
        }
    }
}

#[tokio::test]
async fn dns_failures_count_no_api_errors() {
    let (results, _, _) = run_script(script()).await;
    let mut recorder = Recorder::new(Duration::from_secs(3600), Duration::from_secs(600));
    for (result, _) in &results {
        recorder.record(result);
    }
    let window = recorder.window("catalog", Instant::now(), Duration::from_secs(600));
    assert_eq!(window.total(), 12);
    assert_eq!(window.samples(), 7, "only answered probes have a latency");

    let outcome = |outcome| Filter::Outcome {
        outcome,
        equal: true,
    };
    assert_eq!(window.count(&outcome(Outcome::Ok)), 7);
    assert_eq!(window.count(&outcome(Outcome::DnsTimeout)), 2);
    assert_eq!(window.count(&outcome(Outcome::DnsServfail)), 2);
    assert_eq!(window.count(&outcome(Outcome::DnsNxdomain)), 1);
    assert_eq!(window.count(&outcome(Outcome::DnsError)), 0);
    assert_eq!(window.count(&Filter::Status(StatusOp::Eq, 401)), 0);
    assert_eq!(window.count(&Filter::Status(StatusOp::Eq, 429)), 0);
    assert_eq!(window.count(&Filter::Status(StatusOp::Ge, 500)), 0);
    let p99 = window.quantile(0.99).unwrap();
    assert!(
        p99 < DNS_TIMEOUT,
        "DNS waits stay out of the latency: {p99:?}"
    );

    // The exported `error.type` (`error_type` in Prometheus) carries the DNS classes.
    let metrics = PrometheusMetrics::new("test");
    for (result, _) in &results {
        metrics.record_result(&spec(), result, HOST);
    }
    let text = metrics.encode();
    for (error_type, count) in [
        ("ok", 7),
        ("dns_timeout", 2),
        ("dns_servfail", 2),
        ("dns_nxdomain", 1),
    ] {
        let line = text
            .lines()
            .filter(|line| line.starts_with("loftwatch_probe_results_total{"))
            .find(|line| line.contains(&format!("error_type=\"{error_type}\"")))
            .unwrap_or_else(|| panic!("no {error_type} series in:\n{text}"));
        assert!(line.ends_with(&format!(" {count}")), "{line}");
    }
    let durations = text
        .lines()
        .filter(|line| line.starts_with("http_client_request_duration_seconds_count"))
        .collect::<Vec<_>>();
    assert!(
        durations.iter().all(|line| !line.contains("dns_")),
        "{durations:?}"
    );
}
