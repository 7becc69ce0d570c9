//! A tiny authoritative DNS server on 127.0.0.1 (UDP) answering TXT queries from a table,
//! standing in for the DNS of remote domains in DKIM tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

/// How the server answers one name.
#[derive(Debug, Clone)]
pub enum Answer {
    /// TXT record with this text.
    Txt(String),
    /// SERVFAIL.
    ServFail,
}

/// Starts the server; names are lower-case without the trailing dot. Unknown names get
/// NXDOMAIN.
pub async fn start(table: HashMap<String, Answer>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let table = Arc::new(table);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if let Some(resp) = respond(&buf[..n], &table) {
                let _ = socket.send_to(&resp, peer).await;
            }
        }
    });
    addr
}

fn respond(q: &[u8], table: &HashMap<String, Answer>) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // The question: labels, then QTYPE and QCLASS.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question = q.get(12..i + 4)?;
    let name = labels.join(".");
    let (rcode, answer) = match table.get(&name) {
        Some(Answer::Txt(text)) if qtype == 16 => (0u8, Some(text.clone())),
        Some(Answer::Txt(_)) => (0, None),
        Some(Answer::ServFail) => (2, None),
        None => (3, None),
    };
    let mut r = Vec::new();
    r.extend_from_slice(&q[..2]);
    r.push(0x84 | (q[2] & 0x01)); // QR, AA, RD copied
    r.push(rcode);
    r.extend_from_slice(&[0, 1, 0, u8::from(answer.is_some()), 0, 0, 0, 0]);
    r.extend_from_slice(question);
    if let Some(text) = answer {
        let mut rdata = Vec::new();
        for chunk in text.as_bytes().chunks(255) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk);
        }
        r.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}
