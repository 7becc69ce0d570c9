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

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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

async fn sink(port: u16) -> Res<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = sink_session(stream).await;
        });
    }
}

async fn sink_session(stream: TcpStream) -> Res<()> {
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        match verb.as_slice() {
            b"EHLO" => {
                w.write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?
            }
            b"DATA" => {
                w.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                w.write_all(b"250 2.0.0 Ok: queued\r\n").await?;
            }
            b"QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"250 Ok\r\n").await?,
        }
    }
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
        let wire = stuff(msg.as_bytes());
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

fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    let mut start = true;
    for &b in message {
        if start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

async fn session(port: u16, from: &str, wire: &[u8]) -> Res<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    reply(&mut r).await?;
    for cmd in [
        "EHLO load\r\n".to_string(),
        format!("MAIL FROM:<{from}>\r\n"),
        "RCPT TO:<sink@chat.example.org>\r\n".to_string(),
        "DATA\r\n".to_string(),
    ] {
        w.write_all(cmd.as_bytes()).await?;
        let rep = reply(&mut r).await?;
        if !(rep.starts_with('2') || rep.starts_with('3')) {
            return Ok(rep);
        }
    }
    w.write_all(wire).await?;
    let rep = reply(&mut r).await?;
    w.write_all(b"QUIT\r\n").await?;
    Ok(rep)
}

async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Res<String> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err("connection closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.trim_end().to_string());
        }
    }
}
