//! Accept loop and connections: reads requests, applies faults and writes responses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::api::{self, ERROR_401_MISSING_TOKEN, ERROR_404, ERROR_429};
use super::control;
use super::fault::canonical_path;
use super::http::{ReadError, Request, Response, read_request, reason};
use super::log::LoggedRequest;
use super::ratelimit;
use super::state::{FaultAction, State};

/// Number of pieces a `slow_body` fault splits the body into, at most.
const SLOW_BODY_CHUNKS: usize = 20;
/// Size of the pieces in which an `oversized_body` fault writes its padding.
const PADDING_CHUNK: usize = 64 * 1024;

/// Accepts connections until `shutdown` turns true, then drops every open connection.
pub async fn serve(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!(%peer, "connection accepted");
                    connections.spawn(handle_connection(stream, Arc::clone(&state)));
                }
                Err(error) => {
                    // Running out of file descriptors is the usual cause: wait before retrying.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.abort_all();
}

/// Whether a connection stays open after a request.
enum Next {
    KeepOpen,
    Close,
}

async fn handle_connection(mut stream: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buffer).await {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(ReadError::Io(error)) => {
                debug!(%error, "connection read failed");
                return;
            }
            Err(ReadError::Invalid { status, reason }) => {
                debug!(status, %reason, "invalid request");
                let response = Response::json(status, json!({ "error": reason }).to_string());
                let _ = response.write_to(&mut stream, false).await;
                return;
            }
        };
        let next = if request.path == "/_sim" || request.path.starts_with("/_sim/") {
            let response = control::respond(&state, &request);
            match response.write_to(&mut stream, request.keep_alive).await {
                Ok(()) if request.keep_alive => Next::KeepOpen,
                _ => Next::Close,
            }
        } else {
            serve_api(&mut stream, &state, &request).await
        };
        if let Next::Close = next {
            return;
        }
    }
}

async fn serve_api(stream: &mut TcpStream, state: &State, request: &Request) -> Next {
    let elapsed_ms = state.elapsed().as_millis() as u64;
    let received_at = std::time::SystemTime::now();
    let token_present = api::bearer_token(request).is_some();
    let plan = state.lock().plan_faults(&request.path);
    let log = |status: Option<u16>| {
        let mut inner = state.lock();
        inner.stats.record(&canonical_path(&request.path), status);
        inner.log.push(LoggedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            status,
            elapsed_ms,
            received_at,
            token_present,
            fault: (!plan.kinds.is_empty()).then(|| plan.kinds.join(",")),
        });
    };

    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let mut response = match &plan.action {
        Some(FaultAction::Hang) => {
            log(None);
            hang(stream).await;
            return Next::Close;
        }
        Some(FaultAction::Reset) => {
            log(None);
            if let Err(error) = stream.set_zero_linger() {
                warn!(%error, "setting SO_LINGER to zero failed, closing without reset");
            }
            return Next::Close;
        }
        Some(FaultAction::Close) => {
            log(None);
            let _ = stream.shutdown().await;
            return Next::Close;
        }
        Some(FaultAction::Status(code)) => status_response(state, *code),
        _ => api::respond(state, request),
    };
    if let Some(FaultAction::MalformedJson) = &plan.action {
        let keep = response.body.len() / 2;
        response.body.truncate(keep);
    }
    log(Some(response.status));

    let written = match &plan.action {
        Some(FaultAction::SlowBody(duration)) => {
            trickle(stream, &response, request.keep_alive, *duration).await
        }
        Some(FaultAction::OversizedBody(bytes)) => {
            write_padded(stream, response, request.keep_alive, *bytes).await
        }
        _ => response.write_to(stream, request.keep_alive).await,
    };
    match written {
        Ok(()) if request.keep_alive => Next::KeepOpen,
        Ok(()) => Next::Close,
        Err(error) => {
            debug!(%error, "response write failed");
            Next::Close
        }
    }
}

/// Builds the response of a status fault, with the fixture body where one exists.
fn status_response(state: &State, code: u16) -> Response {
    match code {
        401 => Response::json(401, ERROR_401_MISSING_TOKEN),
        404 => Response::json(404, ERROR_404),
        429 => {
            let mode = state.lock().retry_after;
            let response = Response::json(429, ERROR_429);
            match ratelimit::retry_after_value(mode, state.now_wall()) {
                Some(value) => response.with_header("retry-after", value),
                None => response,
            }
        }
        _ => Response::json(code, json!({ "error": reason(code) }).to_string()),
    }
}

/// Writes `response` with its body padded to at least `bytes`. A JSON object gets a `padding`
/// string member, so it still parses. Any other body gets trailing spaces. The padding is
/// written in pieces of [`PADDING_CHUNK`] bytes, so a body of any size costs no more memory.
async fn write_padded(
    stream: &mut TcpStream,
    mut response: Response,
    keep_alive: bool,
    bytes: usize,
) -> std::io::Result<()> {
    let (fill_byte, suffix): (u8, &[u8]) = if response.body.last() == Some(&b'}') {
        response.body.pop();
        response.body.extend_from_slice(b",\"padding\":\"");
        (b'x', b"\"}")
    } else {
        (b' ', b"")
    };
    let fill = bytes.saturating_sub(response.body.len() + suffix.len());
    let length = response.body.len() + fill + suffix.len();
    stream
        .write_all(&response.head_bytes_with_length(keep_alive, length))
        .await?;
    stream.write_all(&response.body).await?;
    let chunk = vec![fill_byte; PADDING_CHUNK.min(fill)];
    let mut remaining = fill;
    while remaining > 0 {
        let piece = remaining.min(chunk.len());
        stream.write_all(&chunk[..piece]).await?;
        remaining -= piece;
    }
    stream.write_all(suffix).await?;
    stream.flush().await
}

/// Writes the head at once and the body in pieces spread over `duration`.
async fn trickle(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
    duration: Duration,
) -> std::io::Result<()> {
    stream.write_all(&response.head_bytes(keep_alive)).await?;
    stream.flush().await?;
    let pieces = response.body.len().clamp(1, SLOW_BODY_CHUNKS);
    let piece_len = response.body.len().div_ceil(pieces).max(1);
    let interval = duration / pieces as u32;
    for piece in response.body.chunks(piece_len) {
        tokio::time::sleep(interval).await;
        stream.write_all(piece).await?;
        stream.flush().await?;
    }
    Ok(())
}

/// Keeps the connection open without a response until the peer closes it.
async fn hang(stream: &mut TcpStream) {
    let mut scratch = [0u8; 1024];
    loop {
        match stream.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
