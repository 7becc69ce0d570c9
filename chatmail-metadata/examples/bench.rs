//! Throughput and latency of chatmail-metadata at 64 dict connections, beside a trivial
//! line-echo server on a unix socket measured in the same run (the floor).
//!
//! Build and run: `cargo run --release -p chatmail-metadata --example bench [SECONDS]`.
//! It starts the release `chatmail-metadata` binary next to this example's directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    reason = "a measuring tool, not service code: any failure should stop it loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

const CONNECTIONS: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--echo-server") {
        return echo_server(Path::new(&args[2]));
    }
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(Duration::from_secs_f64(secs)));
}

/// The floor: replies `O` to every line, nothing else.
fn echo_server(path: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let l = UnixListener::bind(path).unwrap();
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let answers = matches!(line.first(), Some(b'C' | b'L'));
                    if answers && w.write_all(b"O\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

async fn wait_for(path: &Path) {
    for _ in 0..500 {
        if UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never came up", path.display());
}

#[derive(Clone, Copy)]
enum Load {
    Set,
    Lookup,
}

struct Result {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn drive(socket: &Path, load: Load, secs: Duration) -> Result {
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + secs;
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let socket = socket.to_owned();
        tasks.push(tokio::spawn(async move {
            let s = UnixStream::connect(&socket).await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let user = format!("bench{c}@example.org");
            let req = match load {
                Load::Set => {
                    format!("B1\t{user}\nS1\tpriv/guid/devicetoken\ttoken-of-device-{c}\nC1\n")
                }
                Load::Lookup => format!("Lpriv/guid/devicetoken\t{user}\n"),
            };
            let mut lat = Vec::new();
            let mut line = Vec::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                w.write_all(req.as_bytes()).await.unwrap();
                line.clear();
                r.read_until(b'\n', &mut line).await.unwrap();
                assert_eq!(
                    line.first(),
                    Some(&b'O'),
                    "{:?}",
                    String::from_utf8_lossy(&line)
                );
                if t0 >= start {
                    lat.push(t0.elapsed());
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize];
    Result {
        rate: all.len() as f64 / secs.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn bench(secs: Duration) {
    let exe = std::env::current_exe().unwrap();
    let bin: PathBuf = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("chatmail-metadata");
    let dir = tempfile::tempdir().unwrap();
    let vmail = dir.path().join("vmail");
    std::fs::create_dir(&vmail).unwrap();
    let ini = dir.path().join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = example.org\nmailboxes_dir = {}\nnotification_url = http://127.0.0.1:9/\n",
            vmail.display()
        ),
    )
    .unwrap();

    let echo_sock = dir.path().join("echo.socket");
    let mut echo = Command::new(&exe)
        .arg("--echo-server")
        .arg(&echo_sock)
        .spawn()
        .unwrap();
    let sock = dir.path().join("metadata.socket");
    let mut svc = Command::new(&bin)
        .arg(&sock)
        .arg(&ini)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    wait_for(&echo_sock).await;
    wait_for(&sock).await;

    println!(
        "{CONNECTIONS} connections, {:.1} s per row, one request in flight per connection",
        secs.as_secs_f64()
    );
    println!("| load | requests/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, r: &Result| {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            r.rate,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3
        );
    };
    let floor = drive(&echo_sock, Load::Lookup, secs).await;
    row("floor: echo server, one line → `O`", &floor);
    let floor_tx = drive(&echo_sock, Load::Set, secs).await;
    row("floor: echo server, B/S/C → `O`", &floor_tx);
    let set = drive(&sock, Load::Set, secs).await;
    row("chatmail-metadata: set devicetoken (B/S/C)", &set);
    let get = drive(&sock, Load::Lookup, secs).await;
    row("chatmail-metadata: lookup devicetoken", &get);
    println!("chatmail-metadata peak RSS: {} KiB", rss_kib(svc.id()));
    svc.kill().unwrap();
    svc.wait().unwrap();
    echo.kill().unwrap();
    echo.wait().unwrap();
    notifications(&bin, dir.path(), 1000).await;
}

/// Start-up with `n` queued items and a local HTTP/1.1 server answering 200: time until
/// the server saw every token, and the peak memory of the service.
async fn notifications(bin: &Path, dir: &Path, n: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                loop {
                    let mut len = 0usize;
                    let mut first = true;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() && !first {
                            break;
                        }
                        first = false;
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    tokio::io::AsyncReadExt::read_exact(&mut r, &mut body)
                        .await
                        .unwrap();
                    let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if r.get_mut().write_all(resp).await.is_err() {
                        return;
                    }
                    let _ = tx.send(());
                }
            });
        }
    });
    let vmail = dir.join("vmail-notify");
    let queue = vmail.join("pending_notifications");
    std::fs::create_dir_all(&queue).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in 0..n {
        std::fs::write(
            queue.join(format!("{i:032x}")),
            format!("bench{}@example.org\n{now}\ntoken-{i}", i % 64),
        )
        .unwrap();
    }
    let ini = dir.join("notify.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = example.org\nmailboxes_dir = {}\nnotification_url = {url}\n",
            vmail.display()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut svc = Command::new(bin)
        .arg(dir.join("notify.socket"))
        .arg(&ini)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("notifications in time")
            .unwrap();
    }
    let took = t0.elapsed();
    // Files are deleted right after each answer.
    while std::fs::read_dir(&queue).unwrap().count() > 0 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "{n} queued notifications delivered (HTTP/1.1, 200) in {:.0} ms from process start: {:.0}/s; queue empty after {:.0} ms; peak RSS {} KiB",
        took.as_secs_f64() * 1e3,
        n as f64 / took.as_secs_f64(),
        t0.elapsed().as_secs_f64() * 1e3,
        rss_kib(svc.id())
    );
    svc.kill().unwrap();
    svc.wait().unwrap();
}
