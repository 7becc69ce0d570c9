//! `dict-load`: measures a dict service the way Dovecot uses it, beside a floor.
//!
//! - `dict-load floor SOCKET`: the floor, a server answering every line with `N` on a unix
//!   socket — the fastest any dict service could be on this machine and runtime.
//! - `dict-load run SOCKET --conns N --seconds S --request LINE`: N connections, each
//!   sending one request and waiting for its reply (closed loop, as Dovecot's auth
//!   workers do) for S seconds; prints requests/s and latency percentiles. In LINE, `{n}`
//!   is replaced by a per-request counter (e.g. unique addresses for account creation)
//!   and `\t` by TAB.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

struct RunArgs {
    socket: PathBuf,
    conns: usize,
    seconds: u64,
    request: String,
    lines_per_reply: usize,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: dict-load floor SOCKET\n       dict-load run SOCKET --conns N --seconds S --request LINE [--reply-lines K]"
    );
    ExitCode::from(64)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(socket)) = (args.next(), args.next()) else {
        return usage();
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match mode.as_str() {
        "floor" => match rt.block_on(floor(PathBuf::from(socket))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("floor: {e}");
                ExitCode::FAILURE
            }
        },
        "run" => {
            let mut run = RunArgs {
                socket: socket.into(),
                conns: 1,
                seconds: 5,
                request: String::new(),
                lines_per_reply: 1,
            };
            while let Some(flag) = args.next() {
                let Some(value) = args.next() else {
                    return usage();
                };
                match flag.as_str() {
                    "--conns" => run.conns = value.parse().unwrap_or(1),
                    "--seconds" => run.seconds = value.parse().unwrap_or(5),
                    "--request" => run.request = value.replace("\\t", "\t").replace("\\n", "\n"),
                    "--reply-lines" => run.lines_per_reply = value.parse().unwrap_or(1),
                    _ => return usage(),
                }
            }
            if run.request.is_empty() {
                return usage();
            }
            rt.block_on(load(run))
        }
        _ => usage(),
    }
}

async fn floor(socket: PathBuf) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                if w.write_all(b"N\n").await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn load(run: RunArgs) -> ExitCode {
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(run.seconds);
    let run = Arc::new(run);
    let mut tasks = Vec::new();
    for _ in 0..run.conns {
        let (run, counter, errors) = (run.clone(), counter.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let Ok(stream) = UnixStream::connect(&run.socket).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return latencies;
            };
            let (r, mut w) = stream.into_split();
            let mut reader = BufReader::new(r);
            let mut line = String::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let req = format!("{}\n", run.request.replace("{n}", &format!("{n:09}")));
                let start = Instant::now();
                if w.write_all(req.as_bytes()).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                for _ in 0..run.lines_per_reply {
                    line.clear();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return latencies;
                        }
                        Ok(_) => {}
                    }
                }
                if line.starts_with('F') {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            all.extend(l);
        }
    }
    all.sort_unstable();
    let pct = |p: usize| {
        all.get(all.len().saturating_mul(p) / 100)
            .copied()
            .unwrap_or(0)
    };
    let secs = run.seconds.max(1);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "conns={} requests={} rate={}/s p50={}us p99={}us max={}us errors={}",
        run.conns,
        all.len(),
        all.len() as u64 / secs,
        pct(50),
        pct(99),
        all.last().copied().unwrap_or(0),
        errors.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}
