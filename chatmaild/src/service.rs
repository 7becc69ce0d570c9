//! The life cycle every daemon shares (STYLE §5): tracing, config, socket, readiness,
//! serving until SIGTERM/SIGINT, a graceful stop.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cli::Command;
use crate::config::Config;
use crate::dict::server::{DictHandler, Limits, serve};
use crate::error::Error;
use crate::manual::Page;

/// Exit status for a wrong command line (sysexits `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// Exit status for a bad config (sysexits `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// Logs to stderr without timestamps (journald adds them) or colours; `RUST_LOG`
/// overrides the default level `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// Tells systemd the service is ready (after the socket is bound, so no peer ever sees
/// "connection refused" from a started service). Without `NOTIFY_SOCKET` this does
/// nothing. Also starts the watchdog pings when the unit asks for them.
pub fn notify_ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        let period = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            loop {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                tokio::time::sleep(period).await;
            }
        });
    }
}

/// Tells systemd the service is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn shutdown_token() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received, stopping"),
            _ = int.recv() => info!("SIGINT received, stopping"),
        }
        t.cancel();
    });
    Ok(token)
}

/// Raises the soft open-file limit to the hard one: a relay's dict services hold one
/// descriptor per Dovecot connection, far more than the usual soft limit of 1024.
pub fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// The listening socket: the one systemd passed (socket activation, `LISTEN_FDS`) or a
/// fresh bind at `path`. A stale file at `path` is removed only if it is a socket.
pub fn bind_unix(path: &Path) -> Result<UnixListener, Error> {
    let sock_err = |source| Error::Socket {
        path: path.into(),
        source,
    };
    let mut fds = listenfd::ListenFd::from_env();
    if let Ok(Some(listener)) = fds.take_unix_listener(0) {
        info!("using the socket passed by systemd");
        listener.set_nonblocking(true).map_err(sock_err)?;
        return UnixListener::from_std(listener).map_err(sock_err);
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(sock_err)?;
        }
        Ok(_) => {
            return Err(sock_err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "exists and is not a socket; refusing to remove it",
            )));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(e)),
    }
    UnixListener::bind(path).map_err(sock_err)
}

/// The listening TCP socket: the one systemd passed (socket activation with
/// `ListenStream=ADDR:PORT`, `LISTEN_FDS`) or a fresh bind to `addr`.
pub fn bind_tcp(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    let sock_err = |source| Error::Socket {
        path: addr.to_string().into(),
        source,
    };
    let mut fds = listenfd::ListenFd::from_env();
    if let Ok(Some(listener)) = fds.take_tcp_listener(0) {
        info!("using the socket passed by systemd");
        listener.set_nonblocking(true).map_err(sock_err)?;
        return tokio::net::TcpListener::from_std(listener).map_err(sock_err);
    }
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(sock_err)?;
    // A restart must not wait for the old connections' TIME_WAIT.
    socket.set_reuseaddr(true).map_err(sock_err)?;
    socket.bind(addr).map_err(sock_err)?;
    // A burst of first logins must not overflow the accept queue.
    socket.listen(1024).map_err(sock_err)
}

/// The runtime of every daemon: multi-threaded, so a relay's services use all cores and
/// one slow request cannot stall the others, with I/O and timers enabled. On failure the
/// error is logged and the exit code to use is returned.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            error!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// The two positional arguments of a dict daemon, `SOCKET_PATH INI_PATH`, or a request for
/// help; the error is the text for stderr (`usage`, after what was wrong).
pub fn parse_socket_and_ini(
    usage: &str,
    args: impl IntoIterator<Item = OsString>,
) -> Result<Command<(PathBuf, PathBuf)>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut positional = Vec::new();
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n{usage}"))? {
        match arg {
            Value(v) => positional.push(PathBuf::from(v)),
            Long("help") | Short('h') => return Ok(Command::Help),
            other => return Err(format!("{}\n{usage}", other.unexpected())),
        }
    }
    match <[PathBuf; 2]>::try_from(positional) {
        Ok([socket, ini]) => Ok(Command::Run((socket, ini))),
        Err(_) => Err(usage.to_owned()),
    }
}

/// An error that can stop a daemon before it serves: logged, then the process exits with
/// its status (78 for a bad config, 1 otherwise).
pub trait StartError: std::fmt::Display {
    /// The exit status for this error.
    fn exit_code(&self) -> u8;
}

impl StartError for Error {
    fn exit_code(&self) -> u8 {
        Error::exit_code(self)
    }
}

/// Logs `e` and turns it into the exit status of a failed start.
pub fn start_failed(e: &impl StartError) -> ExitCode {
    error!("{e}");
    ExitCode::from(e.exit_code())
}

/// Loads `ini` for a daemon: a bad or missing file is logged and becomes the exit status.
pub fn load_config(ini: &Path) -> Result<Config, ExitCode> {
    Config::load(ini).map_err(|e| start_failed(&e))
}

/// The start-up and stop every daemon shares, written once: the runtime, SIGTERM/SIGINT,
/// the service's own start (`start`: state, listeners, its "serving" log line), readiness,
/// serving until stopped, the stopping notice. `start` gets the stop token; the future it
/// returns serves and gives the exit status. The caller has set up tracing and its config.
pub fn run_daemon<S, Fut, Srv>(start: S) -> ExitCode
where
    S: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<Srv, ExitCode>>,
    Srv: Future<Output = ExitCode>,
{
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let stop = match shutdown_token() {
            Ok(t) => t,
            Err(e) => {
                error!("cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let serving = match start(stop).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        notify_ready();
        let code = serving.await;
        notify_stopping();
        code
    })
}

/// The exit status of a daemon whose serving loop ended with `result`, logged as
/// `<name> stopped` or `<name> stopped on accept error: ...`.
pub fn stopped(name: &str, result: Result<(), impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(()) => {
            info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            warn!("{name} stopped on accept error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Publishes a dict handler's metrics on `metrics_socket` until `stop` (bound at once, so
/// a reader that saw the service's serving line finds the socket).
pub fn spawn_dict_metrics<H: DictHandler>(
    metrics_socket: &Path,
    handler: &Arc<H>,
    stop: &CancellationToken,
) {
    let h = handler.clone();
    crate::metrics::spawn_publisher(
        metrics_socket,
        Arc::new(move |enc: &mut crate::metrics::Encoder| h.render_metrics(enc)),
        stop.clone(),
    );
}

/// Serves a dict `handler` on `listener` until `stop`; `stop` is cancelled when serving
/// ends, so the service's own tasks (metrics, workers) end with it.
pub async fn serve_dict<H: DictHandler>(
    listener: UnixListener,
    handler: Arc<H>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let result = serve(listener, handler, stop.clone(), Limits::default()).await;
    stop.cancel();
    result
}

/// The whole `main` of a dict daemon `NAME SOCKET_PATH INI_PATH`: arguments, tracing,
/// config, the service's own start-up (`make`, given the stop token for its tasks), bind,
/// readiness, serve until stopped.
pub fn run_dict_daemon<H, E, F>(page: &Page, make: F) -> ExitCode
where
    H: DictHandler,
    E: StartError,
    F: FnOnce(Arc<Config>, &CancellationToken) -> Result<H, E>,
{
    let name = page.name;
    let (socket, ini) = match parse_socket_and_ini(page.usage, std::env::args_os().skip(1)) {
        Ok(Command::Run(v)) => v,
        Ok(Command::Help) => return page.print_help(),
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_tracing();
    let config = match load_config(&ini) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    for key in &config.unused_keys {
        tracing::debug!(key, "chatmail.ini key has no effect on this service");
    }
    raise_nofile_limit();
    run_daemon(|stop| async move {
        let handler = Arc::new(make(config, &stop).map_err(|e| start_failed(&e))?);
        let listener = bind_unix(&socket).map_err(|e| {
            error!("{e}");
            stop.cancel();
            ExitCode::FAILURE
        })?;
        spawn_dict_metrics(&crate::metrics::socket_path(&socket), &handler, &stop);
        info!(socket = %socket.display(), "{name} entering serving loop");
        Ok(async move { stopped(name, serve_dict(listener, handler, stop).await) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn two_positionals_exactly() {
        let usage = "usage: x SOCKET_PATH INI_PATH";
        assert_eq!(
            parse_socket_and_ini(usage, args(&["/run/s", "/etc/c.ini"])).unwrap(),
            Command::Run((PathBuf::from("/run/s"), PathBuf::from("/etc/c.ini")))
        );
        assert_eq!(
            parse_socket_and_ini(usage, args(&["--help"])).unwrap(),
            Command::Help
        );
        assert_eq!(
            parse_socket_and_ini(usage, args(&["-h", "a", "b"])),
            Ok(Command::Help)
        );
        assert_eq!(
            parse_socket_and_ini(usage, args(&["/run/s"])),
            Err(usage.to_owned())
        );
        assert!(parse_socket_and_ini(usage, args(&["a", "b", "c"])).is_err());
        let bogus = parse_socket_and_ini(usage, args(&["--bogus", "a", "b"])).unwrap_err();
        assert!(bogus.ends_with(usage), "{bogus}");
    }

    #[tokio::test]
    async fn stale_socket_removed_other_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.socket");
        drop(bind_unix(&p).unwrap());
        assert!(p.exists(), "stale socket left behind");
        let again = bind_unix(&p);
        assert!(again.is_ok());
        let f = dir.path().join("file");
        std::fs::write(&f, b"keep").unwrap();
        assert!(bind_unix(&f).is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"keep");
    }
}
