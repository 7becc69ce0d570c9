//! Load benchmark of the transport: LMTP deliveries per second to a local MX.
//!
//! `cargo run --release -p mxdeliver --example lmtp_bench [smtp|https] [messages]` starts a
//! loopback DNS server and MX (SMTP with STARTTLS, or HTTPS `/mxdeliv`) with a test CA, runs the
//! transport in a child process (so its peak memory is measured alone), and drives it with 1, 8
//! and 64 concurrent LMTP connections, as Postfix would.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "benchmark driver: failures should abort loudly, results go to stdout"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::net::TcpListener;

const DOMAINS: usize = 8;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return child(&args[2..]).await;
    }
    let mode = args.get(1).cloned().unwrap_or_else(|| "smtp".into());
    let total: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);

    let ca = Ca::new();
    let mut zone = Zone::default().addr("mx.bench.test", "127.0.0.1");
    for i in 0..DOMAINS {
        zone = zone.mx(&format!("d{i}.test"), &[(10, "mx.bench.test")]);
    }
    let dns = dns_server(zone).await;
    let tls = ca.server_config(&["mx.bench.test"]);
    let (smtp_port, https_port, mailbox, posted) = if mode == "https" {
        let (port, posted) = https_mx(tls, 200).await;
        (free_port(), port, None, Some(posted))
    } else {
        let (port, mb) = smtp_mx(Some(tls)).await;
        (port, free_port(), Some(mb), None)
    };
    let ca_path =
        std::env::temp_dir().join(format!("mxdeliver-bench-ca-{}.der", std::process::id()));
    std::fs::write(&ca_path, ca.root().as_ref()).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child",
            &dns.to_string(),
            &smtp_port.to_string(),
            &https_port.to_string(),
        ])
        .arg(&ca_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let lmtp: SocketAddr = line.trim().parse().unwrap();

    println!(
        "mode {mode}, {total} messages per run, {DOMAINS} destination domains, 1 recipient each"
    );
    for conc in [1usize, 8, 64] {
        let start = Instant::now();
        let per = total / conc;
        let mut tasks = Vec::new();
        for w in 0..conc {
            tasks.push(tokio::spawn(async move {
                let mut c = Lmtp::connect(lmtp).await;
                let (mut ok, mut busy) = (0usize, 0usize);
                for i in 0..per {
                    let rcpt = format!("u{w}@d{}.test", (w + i) % DOMAINS);
                    let r = c.send("bench@relay.test", &[rcpt.as_str()], MESSAGE).await;
                    match r[0].as_str() {
                        s if s.starts_with("250") => ok += 1,
                        "421 Transport busy" => busy += 1,
                        other => panic!("unexpected reply {other}"),
                    }
                }
                (ok, busy)
            }));
        }
        let (mut ok, mut busy) = (0, 0);
        for t in tasks {
            let (o, b) = t.await.unwrap();
            ok += o;
            busy += b;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "concurrency {conc:>2}: {ok} delivered, {busy} busy in {secs:.2} s = {:.0} msg/s",
            ok as f64 / secs
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!(
        "transport process peak RSS: {}",
        hwm.trim_start_matches("VmHWM:").trim()
    );
    let received = mailbox
        .map(|m| m.lock().unwrap().len())
        .or(posted.map(|p| p.lock().unwrap().len()));
    println!("received at the MX: {}", received.unwrap_or(0));
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_file(ca_path).ok();
}

async fn child(args: &[String]) {
    let dns: SocketAddr = args[0].parse().unwrap();
    let ca = std::fs::read(&args[3]).unwrap();
    let opts = mxdeliver::TransportOptions {
        dns_server: Some(dns),
        dns_timeout: Duration::from_secs(5),
        system_roots: false,
        extra_roots: vec![ca.into()],
        smtp_port: args[1].parse().unwrap(),
        https_port: args[2].parse().unwrap(),
        ..Default::default()
    };
    let config = chatmaild::Config::parse("[params]\nmail_domain = relay.test\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", listener.local_addr().unwrap()).unwrap();
    out.flush().unwrap();
    drop(out);
    let stop = tokio_util::sync::CancellationToken::new();
    mxdeliver::run(Arc::new(config), listener, stop, opts)
        .await
        .unwrap();
}
