//! Load generator for filtermail.
//!
//! `filtermail-load sink PORT`: an SMTP sink on 127.0.0.1 that accepts everything (stands
//! in for Postfix's reinjection port, and is the floor: the load generator straight to it).
//!
//! `filtermail-load send PORT EML SENDERS MESSAGES`: SENDERS concurrent clients send
//! MESSAGES messages in total, one SMTP session per message as Postfix's before-queue proxy
//! does; `{from_addr}`, `{to_addr}`, `{subject}` in EML are filled per sender. Prints
//! messages/s and latency percentiles of whole sessions.
#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chatmail_smtp::testing::{FakeServer, Script, Transcript};
use tokio::net::TcpListener;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sink", port] => sink(port.parse()?).await,
        ["send", port, eml, senders, messages] => {
            send(port.parse()?, eml, senders.parse()?, messages.parse()?).await
        }
        _ => {
            eprintln!("usage: filtermail-load sink PORT | send PORT EML SENDERS MESSAGES");
            std::process::exit(64);
        }
    }
}

/// The scripted fake server of `chatmail-smtp` as a sink that keeps nothing.
async fn sink(port: u16) -> Res<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let _server = FakeServer::serve(listener, Script::load_sink());
    std::future::pending::<()>().await;
    Ok(())
}

async fn send(port: u16, eml: &str, senders: usize, messages: usize) -> Res<()> {
    let template = std::fs::read_to_string(eml)?.replace('\r', "");
    let left = Arc::new(AtomicUsize::new(messages));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..senders {
        let from = format!("load{i}@chat.example.org");
        let msg = template
            .replace("{from_addr}", &from)
            .replace("{to_addr}", "sink@chat.example.org")
            .replace("{subject}", "load")
            .replace('\n', "\r\n");
        let wire = wire(msg.as_bytes());
        let left = Arc::clone(&left);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let t = Instant::now();
                let reply = session(port, &from, &wire).await;
                match reply {
                    Ok(r) if r.starts_with("250") => lat.push(t.elapsed()),
                    Ok(r) => return Err(format!("rejected: {r}")),
                    Err(e) => return Err(format!("error: {e}")),
                }
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?.map_err(|e| e.to_string())?);
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |per_mille: usize| {
        let idx = all.len().saturating_sub(1) * per_mille / 1000;
        all.get(idx).copied().unwrap_or_default()
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "senders={senders} messages={} msg/s={:.0} p50={:.3}ms p99={:.3}ms",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(500)),
        ms(pct(990)),
    )?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `message` dot-stuffed, with the end-of-data line.
fn wire(message: &[u8]) -> Vec<u8> {
    let mut out = chatmail_smtp::stuff(message);
    out.extend_from_slice(b".\r\n");
    out
}

/// One SMTP session per message, as Postfix's before-queue proxy has it.
async fn session(port: u16, from: &str, wire: &[u8]) -> Res<String> {
    let mut t = Transcript::connect(("127.0.0.1", port)).await;
    for cmd in [
        "EHLO load".to_string(),
        format!("MAIL FROM:<{from}>"),
        "RCPT TO:<sink@chat.example.org>".to_string(),
        "DATA".to_string(),
    ] {
        let rep = t.cmd(&cmd).await;
        if !(rep.starts_with('2') || rep.starts_with('3')) {
            return Ok(rep);
        }
    }
    t.send(wire).await;
    let rep = t.last_reply().await;
    t.send(b"QUIT\r\n").await;
    Ok(rep)
}
