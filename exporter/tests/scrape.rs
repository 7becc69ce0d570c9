//! The real `chatmail-exporter` binary scraping lastlogin and chatmail-metadata, which run
//! on unix sockets in a temp dir, with a local HTTP server as the notification service.
//! The scrape is parsed by `prometheus-parse` (an independent parser of the text format),
//! and the counters must move as the test sets a token, triggers a push and logs in.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatmaild::Config;
use chatmaild::dict::server::{Limits, serve};
use chatmaild::metrics::{self, Encoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

const USER: &str = "user@example.org";
const WAIT: Duration = Duration::from_secs(20);

use chatmail_tests::support::{KillOnDrop as Exporter, free_port};

/// A notification service answering 200 to every POST; counts the requests.
async fn push_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Head, then as much body as Content-Length says.
                let body_end = loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    if let Some(head) = text.find("\r\n\r\n") {
                        let len = text[..head]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break head + 4 + len;
                    }
                };
                while buf.len() < body_end {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, hits)
}

/// One dict conversation; returns the reply bytes once `expect_lines` lines arrived.
async fn dict(socket: &Path, request: &str, expect_lines: usize) -> String {
    let mut s = UnixStream::connect(socket).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        while out.iter().filter(|c| **c == b'\n').count() < expect_lines {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "dict server closed early: {out:?}");
            out.extend_from_slice(&b[..n]);
        }
    })
    .await
    .expect("dict reply in time");
    String::from_utf8(out).unwrap()
}

/// `GET /metrics` over plain HTTP/1.1; the parsed samples by `name{labels}`.
async fn scrape(port: u16) -> HashMap<String, f64> {
    scrape_at("127.0.0.1", port).await
}

async fn scrape_at(host: &str, port: u16) -> HashMap<String, f64> {
    let mut s = TcpStream::connect((host, port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("text/plain; version=0.0.4")
    );
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            chatmaild::metrics::names::is_known(name),
            "{name} missing from chatmaild::metrics::names"
        );
    }
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => {
                out.insert(
                    format!("{}_count{{{}}}", s.metric, labels.join(",")),
                    h.iter().map(|b| b.count).fold(0.0, f64::max),
                );
                continue;
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), v);
    }
    out
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} missing from {:#?}", m.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_as_tokens_pushes_and_logins_happen() {
    let dir = tempfile::tempdir().unwrap();
    let vmail = dir.path().join("vmail");
    std::fs::create_dir_all(vmail.join(USER)).unwrap();
    std::fs::write(vmail.join(USER).join("password"), "{SHA512-CRYPT}$6$x").unwrap();
    let (push_port, pushes) = push_server().await;
    let metrics_port = free_port();
    let ini = dir.path().join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = example.org\nmailboxes_dir = {}\nnotification_url = http://127.0.0.1:{push_port}/notify\nmetrics_port = {metrics_port}\nturn_socket_path = {}\n",
            vmail.display(),
            dir.path().join("no-turn.socket").display()
        ),
    )
    .unwrap();
    let config = Arc::new(Config::load(&ini).unwrap());
    let stop = CancellationToken::new();

    // chatmail-metadata, as its main runs it.
    let mdir: PathBuf = dir.path().join("metadata");
    std::fs::create_dir(&mdir).unwrap();
    let msock = mdir.join("metadata.socket");
    let service =
        chatmail_metadata::start(config.clone(), chatmail_metadata::Clock::default(), &stop)
            .unwrap();
    let listener = tokio::net::UnixListener::bind(&msock).unwrap();
    let mmetrics = metrics::socket_path(&msock);
    tokio::spawn({
        let (stop, mm) = (stop.clone(), mmetrics.clone());
        async move { chatmail_metadata::run(listener, &mm, service, stop).await }
    });

    // lastlogin, as `run_dict_daemon` runs it.
    let ldir = dir.path().join("lastlogin");
    std::fs::create_dir(&ldir).unwrap();
    let lsock = ldir.join("lastlogin.socket");
    let handler = Arc::new(lastlogin::LastLoginHandler::new(config.clone()));
    let h = handler.clone();
    metrics::spawn_publisher(
        &metrics::socket_path(&lsock),
        Arc::new(move |e: &mut Encoder| {
            chatmaild::dict::DictHandler::render_metrics(h.as_ref(), e)
        }),
        stop.clone(),
    );
    let listener = tokio::net::UnixListener::bind(&lsock).unwrap();
    tokio::spawn(serve(listener, handler, stop.clone(), Limits::default()));

    let fsreport = dir.path().join("fsreport.prom");
    std::fs::write(
        &fsreport,
        "# HELP chatmail_accounts Number of accounts.\n# TYPE chatmail_accounts gauge\nchatmail_accounts{kind=\"all\"} 1\n",
    )
    .unwrap();
    let _exporter = Exporter(
        Command::new(env!("CARGO_BIN_EXE_chatmail-exporter"))
            .arg(&ini)
            .arg(format!(
                "--service=lastlogin={}",
                ldir.join("metrics.socket").display()
            ))
            .arg(format!(
                "--service=chatmail-metadata={}",
                mmetrics.display()
            ))
            .arg(format!(
                "--service=doveauth={}",
                dir.path().join("absent.socket").display()
            ))
            .arg("--textfile")
            .arg(&fsreport)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", metrics_port))
        .await
        .is_err()
    {
        assert!(started.elapsed() < WAIT, "exporter did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let before = scrape(metrics_port).await;
    assert_eq!(get(&before, "chatmail_service_up{service=lastlogin}"), 1.0);
    assert_eq!(
        get(&before, "chatmail_service_up{service=chatmail-metadata}"),
        1.0
    );
    assert_eq!(get(&before, "chatmail_service_up{service=doveauth}"), 0.0);
    assert_eq!(get(&before, "chatmail_accounts{kind=all}"), 1.0);
    assert_eq!(get(&before, "chatmail_metadata_tokens_set_total{}"), 0.0);
    assert_eq!(
        get(&before, "chatmail_lastlogin_updates_total{result=written}"),
        0.0
    );

    // A reader of lastlogin's metrics socket that never reads must not hold up logins.
    let _stuck = UnixStream::connect(ldir.join("metrics.socket"))
        .await
        .unwrap();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reply = dict(
        &lsock,
        &format!("H3\t2\t0\t\tlastlogin\nB1\t{USER}\nS1\tshared/last-login/{USER}\t{now}\nC1\nB2\t{USER}\nS2\tshared/last-login/{USER}\t{now}\nC2\n"),
        2,
    )
    .await;
    assert_eq!(reply, "O\nO\n");

    let reply = dict(
        &msock,
        &format!("H3\t2\t0\t\tmetadata\nB1\t{USER}\nS1\tpriv/g/devicetoken\ttok1\nC1\nB2\t{USER}\nS2\tpriv/g/messagenew\t1\nC2\n"),
        2,
    )
    .await;
    assert_eq!(reply, "O\nO\n");
    let started = Instant::now();
    let after = loop {
        let m = scrape(metrics_port).await;
        if get(&m, "chatmail_metadata_notifications_total{event=sent}") >= 1.0 {
            break m;
        }
        assert!(
            started.elapsed() < WAIT,
            "push never counted as sent: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pushes.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(get(&after, "chatmail_metadata_tokens_set_total{}"), 1.0);
    assert_eq!(
        get(
            &after,
            "chatmail_metadata_notifications_total{event=queued}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &after,
            "chatmail_metadata_notifications_total{event=retried}"
        ),
        0.0
    );
    assert_eq!(
        get(
            &after,
            "chatmail_metadata_notification_request_duration_seconds_count{}"
        ),
        1.0
    );
    assert_eq!(get(&after, "chatmail_metadata_queue_items{}"), 0.0);
    assert_eq!(
        get(&after, "chatmail_lastlogin_updates_total{result=written}"),
        1.0
    );
    assert_eq!(
        get(&after, "chatmail_lastlogin_updates_total{result=skipped}"),
        1.0,
        "the second login of the day writes nothing"
    );
    stop.cancel();
}

/// A second relay on the same machine gives its exporter another loopback address
/// (`metrics_host`): it serves there and nowhere else.
#[tokio::test]
async fn serves_on_metrics_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let ini = dir.path().join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = example.org\nmailboxes_dir = {}\nmetrics_port = {port}\nmetrics_host = 127.0.0.2\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _exporter = Exporter(
        Command::new(env!("CARGO_BIN_EXE_chatmail-exporter"))
            .arg(&ini)
            .arg("--textfile")
            .arg(dir.path().join("none.prom"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.2", port)).await.is_err() {
        assert!(started.elapsed() < WAIT, "exporter did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    let m = scrape_at("127.0.0.2", port).await;
    assert!(
        m.keys()
            .any(|k| k.starts_with("chatmail_mailboxes_filesystem_size_bytes"))
    );
}
