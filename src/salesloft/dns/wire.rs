//! The DNS message format (RFC 1035, section 4) for one A or AAAA question.
//!
//! Only what a stub resolver needs: encoding a recursive query and reading the response code
//! and the address records of its answer section. Responses that do not match the query's id
//! and question are reported as foreign, so the caller keeps waiting for its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the fixed message header.
const HEADER_LEN: usize = 12;
/// Maximum length of one label, in bytes.
const MAX_LABEL: usize = 63;
/// Maximum length of an encoded name, in bytes, including the length bytes and the root label.
const MAX_NAME: usize = 255;
/// Compression pointers followed while reading one name, beyond which a response is treated
/// as a loop.
const MAX_POINTERS: usize = 32;
/// The Internet class.
const CLASS_IN: u16 = 1;
/// Header flag: recursion desired.
const FLAG_RD: u16 = 0x0100;
/// Header flag: the message is a response.
const FLAG_QR: u16 = 0x8000;
/// Header flag: the response was truncated to fit a UDP datagram.
const FLAG_TC: u16 = 0x0200;

/// The response code NOERROR.
pub(super) const RCODE_NOERROR: u8 = 0;
/// The response code SERVFAIL: the server failed to resolve the name.
pub(super) const RCODE_SERVFAIL: u8 = 2;
/// The response code NXDOMAIN: the name does not exist.
pub(super) const RCODE_NXDOMAIN: u8 = 3;

/// The record type of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    Aaaa,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
        }
    }
}

/// The parts of a response that resolution uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    /// The 4-bit response code.
    pub rcode: u8,
    /// Whether the server cut the response to fit one datagram.
    pub truncated: bool,
    /// Addresses of the question's type in the answer section.
    pub addrs: Vec<IpAddr>,
}

/// Encodes a recursive query for `host` with message id `id`.
pub(super) fn encode_query(id: u16, host: &str, record: RecordType) -> Result<Vec<u8>, String> {
    let mut message = Vec::with_capacity(HEADER_LEN + host.len() + 6);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&FLAG_RD.to_be_bytes());
    // One question, no answer, authority or additional records.
    message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err("the host name is empty".to_owned());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL || !label.is_ascii() {
            return Err(format!(
                "label {label:?} is not 1 to {MAX_LABEL} ASCII characters"
            ));
        }
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.push(0);
    if message.len() - HEADER_LEN > MAX_NAME {
        return Err(format!("the name is longer than {MAX_NAME} bytes"));
    }
    message.extend_from_slice(&record.code().to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(message)
}

/// Reads `packet` as the response to the query `id` for `host` and `record`.
///
/// Returns `Ok(None)` for a packet that is not that response (another id, not a response,
/// another question), and an error for one that is but cannot be read.
pub(super) fn parse_response(
    packet: &[u8],
    id: u16,
    host: &str,
    record: RecordType,
) -> Result<Option<Response>, String> {
    let mut reader = Reader { packet, at: 0 };
    if packet.len() < HEADER_LEN || reader.u16()? != id {
        return Ok(None);
    }
    let flags = reader.u16()?;
    if flags & FLAG_QR == 0 {
        return Ok(None);
    }
    let rcode = (flags & 0x000f) as u8;
    let questions = reader.u16()?;
    let answers = reader.u16()?;
    reader.at = HEADER_LEN;

    // A server may leave the question out of an error response, so only a question that is
    // present has to match.
    let wanted = host.strip_suffix('.').unwrap_or(host);
    for _ in 0..questions {
        let name = reader.name()?;
        let qtype = reader.u16()?;
        let qclass = reader.u16()?;
        if !name.eq_ignore_ascii_case(wanted) || qtype != record.code() || qclass != CLASS_IN {
            return Ok(None);
        }
    }

    let mut addrs = Vec::new();
    if rcode == RCODE_NOERROR {
        for _ in 0..answers {
            // The owner name may be an alias target of a CNAME in the same answer, so every
            // address record of the question's type is taken.
            reader.name()?;
            let rtype = reader.u16()?;
            let rclass = reader.u16()?;
            reader.take(4)?; // TTL
            let length = usize::from(reader.u16()?);
            let data = reader.take(length)?;
            if rtype != record.code() || rclass != CLASS_IN {
                continue;
            }
            let addr = match (record, data.len()) {
                (RecordType::A, 4) => IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
                (RecordType::Aaaa, 16) => {
                    let octets: [u8; 16] = data.try_into().expect("length checked");
                    IpAddr::V6(Ipv6Addr::from(octets))
                }
                _ => return Err(format!("address record of {length} bytes")),
            };
            addrs.push(addr);
        }
    }
    Ok(Some(Response {
        rcode,
        truncated: flags & FLAG_TC != 0,
        addrs,
    }))
}

/// Returns the name of a response code for messages, such as `REFUSED`.
pub(super) fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".to_owned(),
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        other => format!("RCODE {other}"),
    }
}

/// A cursor over a received message.
struct Reader<'a> {
    packet: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        let end = self.at + length;
        let bytes = self
            .packet
            .get(self.at..end)
            .ok_or_else(|| format!("message ends at byte {} inside a field", self.packet.len()))?;
        self.at = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// Reads a possibly compressed name and returns it dotted, without the root label.
    fn name(&mut self) -> Result<String, String> {
        let mut labels: Vec<String> = Vec::new();
        let mut position = self.at;
        let mut resume_at = None;
        let mut pointers = 0;
        loop {
            let length = *self
                .packet
                .get(position)
                .ok_or("message ends inside a name")?;
            match length & 0xc0 {
                0x00 if length == 0 => {
                    position += 1;
                    break;
                }
                0x00 => {
                    let start = position + 1;
                    let end = start + usize::from(length);
                    let label = self
                        .packet
                        .get(start..end)
                        .ok_or("message ends inside a label")?;
                    labels.push(String::from_utf8_lossy(label).into_owned());
                    position = end;
                }
                0xc0 => {
                    let low = *self
                        .packet
                        .get(position + 1)
                        .ok_or("message ends inside a compression pointer")?;
                    pointers += 1;
                    if pointers > MAX_POINTERS {
                        return Err("name compression pointers form a loop".to_owned());
                    }
                    resume_at.get_or_insert(position + 2);
                    position = usize::from(u16::from_be_bytes([length & 0x3f, low]));
                }
                _ => return Err(format!("unknown label type 0x{length:02x}")),
            }
        }
        self.at = resume_at.unwrap_or(position);
        Ok(labels.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a response to `query` with `rcode` and one A record per address, the owner
    /// name compressed as a pointer to the question.
    fn respond(query: &[u8], rcode: u8, addrs: &[[u8; 4]]) -> Vec<u8> {
        let mut packet = query.to_vec();
        packet[2] = 0x81; // QR and RD
        packet[3] = 0x80 | rcode; // RA
        packet[7] = addrs.len() as u8;
        for addr in addrs {
            packet.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            packet.extend_from_slice(addr);
        }
        packet
    }

    #[test]
    fn query_encodes_labels() {
        let query = encode_query(0x1234, "catalog.test.", RecordType::A).unwrap();
        assert_eq!(&query[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&query[12..26], b"\x07catalog\x04test\x00");
        assert_eq!(&query[26..], &[0, 1, 0, 1]);
    }

    #[test]
    fn query_rejects_bad_names() {
        assert!(encode_query(1, "", RecordType::A).is_err());
        assert!(encode_query(1, "a..b", RecordType::A).is_err());
        assert!(encode_query(1, &"x".repeat(64), RecordType::A).is_err());
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(encode_query(1, &long, RecordType::Aaaa).is_err());
    }

    #[test]
    fn response_returns_addresses() {
        let query = encode_query(7, "catalog.test", RecordType::A).unwrap();
        let packet = respond(&query, RCODE_NOERROR, &[[127, 0, 0, 1], [127, 0, 0, 2]]);
        let response = parse_response(&packet, 7, "CATALOG.test", RecordType::A)
            .unwrap()
            .unwrap();
        assert_eq!(response.rcode, RCODE_NOERROR);
        assert!(!response.truncated);
        let expected: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), [127, 0, 0, 2].into()];
        assert_eq!(response.addrs, expected);
    }

    #[test]
    fn response_returns_rcode() {
        let query = encode_query(7, "catalog.test", RecordType::A).unwrap();
        for rcode in [RCODE_SERVFAIL, RCODE_NXDOMAIN, 5] {
            let packet = respond(&query, rcode, &[]);
            let response = parse_response(&packet, 7, "catalog.test", RecordType::A);
            assert_eq!(response.unwrap().unwrap().rcode, rcode);
        }
    }

    #[test]
    fn foreign_packets_are_none() {
        let query = encode_query(7, "catalog.test", RecordType::A).unwrap();
        let packet = respond(&query, RCODE_NOERROR, &[[127, 0, 0, 1]]);
        assert_eq!(
            parse_response(&packet, 8, "catalog.test", RecordType::A),
            Ok(None)
        );
        assert_eq!(
            parse_response(&packet, 7, "other.test", RecordType::A),
            Ok(None)
        );
        assert_eq!(
            parse_response(&packet, 7, "catalog.test", RecordType::Aaaa),
            Ok(None)
        );
        assert_eq!(
            parse_response(&query, 7, "catalog.test", RecordType::A),
            Ok(None)
        );
    }

    #[test]
    fn cut_packet_is_error() {
        let query = encode_query(7, "catalog.test", RecordType::A).unwrap();
        let packet = respond(&query, RCODE_NOERROR, &[[127, 0, 0, 1]]);
        let cut = &packet[..packet.len() - 2];
        assert!(parse_response(cut, 7, "catalog.test", RecordType::A).is_err());
    }

    #[test]
    fn pointer_loop_is_error() {
        let query = encode_query(7, "catalog.test", RecordType::A).unwrap();
        let mut packet = respond(&query, RCODE_NOERROR, &[[127, 0, 0, 1]]);
        // The answer's owner name points at itself.
        let owner = query.len();
        packet[owner + 1] = owner as u8;
        let error = parse_response(&packet, 7, "catalog.test", RecordType::A).unwrap_err();
        assert!(error.contains("loop"), "{error}");
    }
}
