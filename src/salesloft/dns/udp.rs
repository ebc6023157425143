//! Resolution through one configured DNS server over UDP, under one deadline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::DnsError;
use super::wire::{self, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_SERVFAIL, RecordType};

/// Size of the receive buffer. Without EDNS a server sends at most 512 bytes over UDP.
const RECEIVE_BUFFER: usize = 1500;

/// Resolves `host` through `server` within `timeout`: an A query, then an AAAA query only when
/// the name has no A record. Both queries share the deadline.
pub(super) async fn resolve(
    host: &str,
    server: SocketAddr,
    timeout: Duration,
) -> Result<Vec<IpAddr>, DnsError> {
    let deadline = Instant::now() + timeout;
    let v4 = query(host, server, RecordType::A, deadline, timeout).await?;
    if !v4.is_empty() {
        return Ok(v4);
    }
    let v6 = query(host, server, RecordType::Aaaa, deadline, timeout).await?;
    if v6.is_empty() {
        return Err(DnsError::NoAddress {
            host: host.to_owned(),
        });
    }
    Ok(v6)
}

/// Sends one query and waits for its response until `deadline`. The query is sent again,
/// with the same id, once half of the time left has passed, as stub resolvers do against a
/// lost datagram.
async fn query(
    host: &str,
    server: SocketAddr,
    record: RecordType,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<IpAddr>, DnsError> {
    let io_error = |error| DnsError::Io {
        host: host.to_owned(),
        server,
        error,
    };
    let id: u16 = rand::random();
    let message = wire::encode_query(id, host, record).map_err(|reason| DnsError::InvalidName {
        host: host.to_owned(),
        reason,
    })?;
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io_error)?;
    // A connected socket receives datagrams from the server's address only, and reports an
    // ICMP port unreachable as a refused connection.
    socket.connect(server).await.map_err(io_error)?;
    socket.send(&message).await.map_err(io_error)?;

    let now = Instant::now();
    let mut resend_at = Some(now + deadline.saturating_duration_since(now) / 2);
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    loop {
        let wake = resend_at.unwrap_or(deadline);
        let received = match tokio::time::timeout_at(wake, socket.recv(&mut buffer)).await {
            Ok(received) => received.map_err(io_error)?,
            Err(_elapsed) if resend_at.take().is_some() => {
                tracing::debug!(%host, %server, "resending unanswered DNS query");
                socket.send(&message).await.map_err(io_error)?;
                continue;
            }
            Err(_elapsed) => {
                return Err(DnsError::Timeout {
                    host: host.to_owned(),
                    server,
                    timeout,
                });
            }
        };
        let packet = &buffer[..received];
        let response = match wire::parse_response(packet, id, host, record) {
            Ok(Some(response)) => response,
            Ok(None) => {
                tracing::debug!(%host, %server, "ignoring DNS packet for another query");
                continue;
            }
            Err(reason) => {
                return Err(DnsError::Malformed {
                    host: host.to_owned(),
                    server,
                    reason,
                });
            }
        };
        return match response.rcode {
            // NOTE: a truncated answer would need a retry over TCP, which this resolver does
            // not do. A and AAAA answers of one name fit in 512 bytes unless the name has
            // dozens of addresses, so the addresses that arrived are used.
            RCODE_NOERROR if response.truncated && response.addrs.is_empty() => {
                Err(DnsError::Malformed {
                    host: host.to_owned(),
                    server,
                    reason: "truncated response without addresses".to_owned(),
                })
            }
            RCODE_NOERROR => Ok(response.addrs),
            RCODE_SERVFAIL => Err(DnsError::ServerFailure {
                host: host.to_owned(),
                server,
            }),
            RCODE_NXDOMAIN => Err(DnsError::NameNotFound {
                host: host.to_owned(),
                server,
            }),
            rcode => Err(DnsError::Rejected {
                host: host.to_owned(),
                server,
                rcode: wire::rcode_name(rcode),
            }),
        };
    }
}
