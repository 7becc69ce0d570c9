//! chatmail-exporter: one Prometheus `/metrics` endpoint for the whole relay.
//!
//! On every scrape it reads, concurrently, the metrics socket of each service (see
//! [`chatmaild::metrics`]: the daemon writes its figures in the text format and closes),
//! adds `chatmail_service_up{service}` (1: the socket answered in time) and appends the
//! textfiles of the oneshot tools (`chatmail-fsreport --textfile`, `chatmail-expire
//! --textfile`) with `chatmail_textfile_mtime_seconds{file}` so a stale report shows.
//! Families are merged by name, so each appears once even if two sources share it.
//!
//! It serves `{metrics_host}:{metrics_port}` only (`127.0.0.1` by default): the figures are for the operator's
//! Prometheus (through a tunnel or a local agent), never for the internet.
#![forbid(unsafe_code)]

mod filesystem;
mod manual;
mod merge;

use std::convert::Infallible;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use chatmaild::cli::Command;
use chatmaild::metrics::{Encoder, Kind};
use chatmaild::service;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// The manual of this package's binary.
pub const MANUALS: &[&chatmaild::manual::Page] = &[&manual::PAGE];

/// The binary's name.
const NAME: &str = "chatmail-exporter";

/// The services read by default: every daemon of the relay's table that publishes a
/// metrics socket, at its deployed path.
pub fn default_services() -> Vec<(String, PathBuf)> {
    chatmaild::daemons::DAEMONS
        .iter()
        .filter_map(|d| Some((d.name.to_owned(), d.metrics_socket()?)))
        .collect()
}

/// The textfiles read by default; a missing one is skipped.
const DEFAULT_TEXTFILES: &[&str] = &[
    "/var/lib/chatmail-metrics/fsreport.prom",
    "/var/lib/chatmail-metrics/expire.prom",
];

/// Time one service gets to connect and deliver its snapshot.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest snapshot read from one source; the rest is cut off (and the source counted down).
const MAX_SNAPSHOT: u64 = 4 << 20;

/// Scrapes served at once.
const MAX_CONNECTIONS: usize = 16;

/// Read timeout of a scrape's request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The error type of the exporter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] chatmaild::Error),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The accept loop ended on an error.
    #[error("accept failed: {0}")]
    Accept(std::io::Error),
}

/// Where the figures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sources {
    /// `(service name, metrics socket)`.
    pub services: Vec<(String, PathBuf)>,
    /// Prometheus textfiles.
    pub textfiles: Vec<PathBuf>,
    /// A directory whose file system is reported (module `filesystem`): `mailboxes_dir`.
    pub filesystem: Option<PathBuf>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            services: default_services(),
            textfiles: DEFAULT_TEXTFILES.iter().map(PathBuf::from).collect(),
            filesystem: None,
        }
    }
}

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    /// `chatmail.ini`.
    pub ini: PathBuf,
    /// What to read.
    pub sources: Sources,
}

/// The usage text.
const USAGE: &str =
    "usage: chatmail-exporter [INI] [--service NAME=SOCKET]... [--textfile PATH]...";

/// Parses the command line. `--service NAME=SOCKET` replaces the socket of a default
/// service or adds one; `--textfile PATH` (repeatable) replaces the default textfiles.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_iter(std::iter::once(OsString::from(NAME)).chain(args));
    let mut ini = None;
    let mut sources = Sources::default();
    let mut textfiles = Vec::new();
    let err = |e: lexopt::Error| format!("{e}\n{USAGE}");
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Value(v) if ini.is_none() => ini = Some(PathBuf::from(v)),
            Long("service") => {
                let v = parser.value().map_err(err)?;
                let v = v.to_str().ok_or_else(|| USAGE.to_owned())?;
                let Some((name, path)) = v.split_once('=') else {
                    return Err(format!("--service wants NAME=SOCKET, got {v:?}\n{USAGE}"));
                };
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    return Err(format!("bad service name {name:?}\n{USAGE}"));
                }
                sources.services.retain(|(n, _)| n != name);
                sources
                    .services
                    .push((name.to_owned(), PathBuf::from(path)));
            }
            Long("textfile") => textfiles.push(PathBuf::from(parser.value().map_err(err)?)),
            Long("help") | Short('h') => return Ok(Command::Help),
            other => return Err(format!("{}\n{USAGE}", other.unexpected())),
        }
    }
    if !textfiles.is_empty() {
        sources.textfiles = textfiles;
    }
    Ok(Command::Run(Args {
        ini: ini.unwrap_or_else(|| PathBuf::from(chatmaild::config::DEFAULT_INI)),
        sources,
    }))
}

/// Reads one service's snapshot; `None` if it is down, too slow or sent no text.
async fn read_service(path: &Path) -> Option<String> {
    let read = async {
        let stream = tokio::net::UnixStream::connect(path).await?;
        let mut buf = Vec::new();
        stream.take(MAX_SNAPSHOT).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(SERVICE_TIMEOUT, read).await {
        Ok(Ok(buf)) if (buf.len() as u64) < MAX_SNAPSHOT => match String::from_utf8(buf) {
            Ok(text) => Some(text),
            Err(_) => {
                warn!(socket = %path.display(), "metrics snapshot is not UTF-8");
                None
            }
        },
        Ok(Ok(_)) => {
            warn!(socket = %path.display(), "metrics snapshot too large");
            None
        }
        Ok(Err(e)) => {
            debug!(socket = %path.display(), "service unreachable: {e}");
            None
        }
        Err(_) => {
            warn!(socket = %path.display(), "service did not answer in time");
            None
        }
    }
}

/// Reads a textfile and its mtime; `None` if absent or unreadable.
async fn read_textfile(path: &Path) -> Option<(String, f64)> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    if meta.len() >= MAX_SNAPSHOT {
        warn!(file = %path.display(), "textfile too large, skipped");
        return None;
    }
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) => {
            warn!(file = %path.display(), "cannot read textfile: {e}");
            return None;
        }
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    Some((text, mtime))
}

/// Name of the per-service up gauge.
const SERVICE_UP: &str = chatmaild::metrics::names::SERVICE_UP;
/// Name of the textfile age gauge.
const TEXTFILE_MTIME: &str = chatmaild::metrics::names::TEXTFILE_MTIME;

/// One scrape: every source read concurrently, rendered as one document.
async fn scrape(sources: &Sources) -> String {
    let services = read_all(
        sources.services.iter().map(|(_, p)| p.clone()),
        |p| async move { read_service(&p).await },
    )
    .await;
    let files = read_all(sources.textfiles.iter().cloned(), |p| async move {
        read_textfile(&p).await
    })
    .await;
    let disk = match &sources.filesystem {
        Some(dir) => filesystem::read_within(dir.clone(), SERVICE_TIMEOUT).await,
        None => None,
    };
    let mut enc = Encoder::new();
    enc.family(
        SERVICE_UP,
        "1 if the service's metrics socket answered this scrape.",
        Kind::Gauge,
    );
    for ((name, _), snap) in sources.services.iter().zip(&services) {
        enc.sample(
            SERVICE_UP,
            &[("service", name)],
            if snap.is_some() { 1.0 } else { 0.0 },
        );
    }
    enc.family(
        TEXTFILE_MTIME,
        "Modification time of a report textfile (unix seconds).",
        Kind::Gauge,
    );
    for (path, file) in sources.textfiles.iter().zip(&files) {
        if let Some((_, mtime)) = file {
            let name = path.file_name().map(|n| n.to_string_lossy());
            enc.sample(
                TEXTFILE_MTIME,
                &[("file", &name.unwrap_or_default())],
                *mtime,
            );
        }
    }
    if let Some(usage) = &disk {
        filesystem::render(&mut enc, usage);
    }
    let own = enc.finish();
    let mut docs: Vec<&str> = vec![&own];
    docs.extend(services.iter().flatten().map(String::as_str));
    docs.extend(files.iter().flatten().map(|(t, _)| t.as_str()));
    merge::merge(&docs)
}

/// Runs `read` on every path concurrently (one task each), results in order.
async fn read_all<T, F, Fut>(paths: impl Iterator<Item = PathBuf>, read: F) -> Vec<Option<T>>
where
    T: Send + 'static,
    F: Fn(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Option<T>> + Send + 'static,
{
    let handles: Vec<_> = paths.map(|p| tokio::spawn(read(p))).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.ok().flatten());
    }
    out
}

/// The response to one request.
async fn respond(method: &Method, path: &str, sources: &Sources) -> Response<Full<Bytes>> {
    let (status, body, ctype) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            scrape(sources).await,
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed\n".to_owned(),
            "text/plain; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "Not Found: see /metrics\n".to_owned(),
            "text/plain; charset=utf-8",
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Serves `/metrics` on `listener` until `stop`.
async fn serve(
    listener: TcpListener,
    sources: Arc<Sources>,
    stop: CancellationToken,
) -> Result<(), Error> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let builder = Arc::new(builder);
    chatmaild::accept::accept_loop(
        &listener,
        MAX_CONNECTIONS,
        &stop,
        Duration::from_secs(5),
        |(stream, peer): (tokio::net::TcpStream, SocketAddr)| {
            let (builder, sources, stop) = (builder.clone(), sources.clone(), stop.clone());
            async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let sources = sources.clone();
                    async move {
                        Ok::<_, Infallible>(respond(req.method(), req.uri().path(), &sources).await)
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                let r = tokio::select! {
                    r = conn.as_mut() => r,
                    () = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = r {
                    debug!(%peer, "scrape connection ended: {e}");
                }
            }
        },
    )
    .await
    .map_err(Error::Accept)
}

/// The whole program.
pub fn main_entry() -> ExitCode {
    let mut args = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Run(a)) => a,
        Ok(Command::Help) => return manual::PAGE.print_help(),
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(service::EXIT_USAGE);
        }
    };
    service::init_tracing();
    let config = match service::load_config(&args.ini) {
        Ok(c) => c,
        Err(code) => return code,
    };
    args.sources.filesystem = Some(config.mailboxes_dir.clone());
    service::run_daemon(|stop| async move {
        let addr = SocketAddr::from((config.metrics_host, config.metrics_port));
        let listener = TcpListener::bind(addr).await.map_err(|source| {
            error!("{}", Error::Listen { addr, source });
            ExitCode::FAILURE
        })?;
        info!(%addr, "{NAME} serving /metrics");
        Ok(async move {
            match serve(listener, Arc::new(args.sources), stop).await {
                Ok(()) => {
                    info!("{NAME} stopped");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    warn!("{NAME} stopped: {e}");
                    ExitCode::FAILURE
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        match parse_args(v.iter().map(OsString::from))? {
            Command::Run(a) => Ok(a),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn command_line() {
        let a = args(&[]).unwrap();
        assert_eq!(a.ini, PathBuf::from(chatmaild::config::DEFAULT_INI));
        assert_eq!(a.sources, Sources::default());
        let a = args(&[
            "/x.ini",
            "--service",
            "lastlogin=/tmp/l.sock",
            "--service=extra=/tmp/e.sock",
            "--textfile",
            "/t/f.prom",
        ])
        .unwrap();
        assert_eq!(a.ini, PathBuf::from("/x.ini"));
        assert_eq!(a.sources.services.len(), default_services().len() + 1);
        assert!(
            a.sources
                .services
                .contains(&("lastlogin".into(), "/tmp/l.sock".into()))
        );
        assert_eq!(a.sources.textfiles, [PathBuf::from("/t/f.prom")]);
        assert!(args(&["--service", "noequals"]).is_err());
        assert!(args(&["--service", "bad\"name=/x"]).is_err());
        assert!(args(&["a", "b"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert_eq!(args(&["--help"]), Err("help".into()));
    }

    #[tokio::test]
    async fn absent_services_are_down_and_absent_textfiles_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let prom = dir.path().join("fsreport.prom");
        std::fs::write(
            &prom,
            "# HELP chatmail_accounts Number of accounts.\n# TYPE chatmail_accounts gauge\nchatmail_accounts{kind=\"all\"} 7\n",
        )
        .unwrap();
        let sources = Sources {
            services: vec![("lastlogin".into(), dir.path().join("none.socket"))],
            textfiles: vec![prom, dir.path().join("missing.prom")],
            filesystem: None,
        };
        let text = scrape(&sources).await;
        assert!(text.contains("chatmail_service_up{service=\"lastlogin\"} 0\n"));
        assert!(text.contains("chatmail_accounts{kind=\"all\"} 7\n"));
        assert!(text.contains("chatmail_textfile_mtime_seconds{file=\"fsreport.prom\"} "));
        assert!(!text.contains("missing.prom"));
        assert!(!text.contains("filesystem"));
        let sources = Sources {
            filesystem: Some(dir.path().to_owned()),
            ..sources
        };
        let text = scrape(&sources).await;
        assert!(text.contains("\nchatmail_mailboxes_filesystem_avail_bytes "));
        let sources = Sources {
            filesystem: Some(dir.path().join("absent")),
            ..sources
        };
        assert!(!scrape(&sources).await.contains("filesystem"));
    }
}
