//! `doveauth INI_PATH`: HTTP `/create` for Dovecot's Lua passdb (SPEC §3.9).
//!
//! Dovecot's Lua script serves existing users from their password files itself and asks
//! here only about unknown ones: `POST /create` with body `addr\tpassword`. HTTP/1.1 with
//! keep-alive on 127.0.0.1, because Dovecot's HTTP client reuses its connections; every
//! `/create` reply has an empty body, and every reply but `200` closes the connection (the
//! body may not have been read). A `403` for now (the creation rate cap, the system limits)
//! carries `Retry-After`, which Dovecot ignores and the newemail CGI passes on.
//!
//! `GET /registration` answers the registration mode as one plain-text line, in the words
//! of `chatmail-admin registration status` (`open`, `invite-only`, `close`): the newemail
//! CGI runs as the web server's user, cannot read the state directory, and asks here
//! before it hands out credentials without an invitation.
//!
//! The client a login comes from may be named in [`CLIENT_HEADER`] (one IP address; the
//! relay's auth script passes Dovecot's remote IP, the newemail CGI the web client's); the
//! creation rate cap counts per client, and a request without it counts against the
//! relay-wide ceiling only, as upstream's auth script sends none.
//!
//! No slowloris: a request head must arrive within [`HEAD_TIMEOUT`] (also between requests
//! on a kept-alive connection) and its body within [`BODY_TIMEOUT`], and the connections
//! are capped per peer and in total with the oldest idle one making room
//! ([`crate::conns`]), so idle clients can neither hold the port nor keep Dovecot out.
//!
//! Parsing ([`parse_create`]) is separate from the I/O so it can be tested on its own.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatmaild::accept::accept_loop;
use chatmaild::registry::RegistrationMode;
use chatmaild::service;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::conns::{Conns, MAX_PER_PEER, MAX_TOTAL, Slot};
use crate::metrics::{LookupKind, LookupResult};
use crate::{Asker, AuthHandler, AuthVerdict, Refused};

/// Account creation (`POST`).
pub const CREATE_PATH: &str = "/create";
/// The registration mode (`GET`), for the newemail CGI.
pub const REGISTRATION_PATH: &str = "/registration";
/// `Retry-After` of a refusal for now (rate cap, system limits): the cap's window.
pub const BUSY_RETRY_AFTER: &str = "60";
/// Largest accepted body: an address and a password.
pub const MAX_BODY: usize = 512;
/// The header naming the client a login comes from: one IP address.
pub const CLIENT_HEADER: &str = "x-forwarded-for";
/// A request head must arrive within this long, counted from the connection or from the
/// previous answer: idle keep-alive connections are closed after it too (Dovecot's HTTP
/// client sees the close before it reuses a connection and opens a new one).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The declared body must arrive within this long after the head.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time requests in flight get to finish after a stop request.
const GRACE: Duration = Duration::from_secs(10);
/// The metrics socket in HTTP mode, which has no dict socket to sit beside: where the dict
/// mode's would be, in doveauth's runtime directory of the table of services
/// (`$CHATMAIL_METRICS_SOCKET` overrides it).
#[expect(
    clippy::expect_used,
    reason = "a static table entry, pinned by its tests"
)]
pub fn default_metrics_socket() -> std::path::PathBuf {
    chatmaild::daemons::DOVEAUTH
        .metrics_socket()
        .expect("doveauth has a runtime directory")
}

/// Why a request body is not a creation request (answered with `400`).
#[derive(Debug, PartialEq, Eq)]
pub enum BadBody {
    /// Not UTF-8.
    NotUtf8,
    /// Contains a NUL byte.
    Nul,
}

/// Splits a `/create` body into address and password at the first TAB (the password may
/// contain more). A body without a TAB is an address with an empty password, which the
/// creation rules then refuse.
pub fn parse_create(body: &[u8]) -> Result<(&str, &str), BadBody> {
    let text = std::str::from_utf8(body).map_err(|_| BadBody::NotUtf8)?;
    if text.contains('\0') {
        return Err(BadBody::Nul);
    }
    Ok(text.split_once('\t').unwrap_or((text, "")))
}

/// The declared body length if it is acceptable: present, a number, at most [`MAX_BODY`].
pub fn declared_length(headers: &hyper::HeaderMap) -> Option<usize> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let n: usize = value.to_str().ok()?.trim().parse().ok()?;
    (n <= MAX_BODY).then_some(n)
}

/// An empty reply; anything but `200` asks the client to close the connection.
fn reply(status: StatusCode) -> Response<Full<Bytes>> {
    reply_with(status, Bytes::new())
}

/// A reply with `body`; anything but `200` asks the client to close the connection.
fn reply_with(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let len = HeaderValue::from(body.len());
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_LENGTH, len);
    if status != StatusCode::OK {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The body of a `/registration` answer: the mode's name and a newline.
pub fn registration_body(mode: RegistrationMode) -> String {
    format!("{}\n", mode.name())
}

/// The client named by [`CLIENT_HEADER`], if it is there once and one address.
pub fn client_address(headers: &hyper::HeaderMap) -> Option<IpAddr> {
    let mut values = headers.get_all(CLIENT_HEADER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.trim().parse().ok()
}

/// One request from `peer`.
pub async fn handle(
    req: Request<Incoming>,
    auth: &AuthHandler,
    peer: IpAddr,
    slot: &Slot,
) -> Response<Full<Bytes>> {
    let response = route(req, auth, peer, slot).await;
    slot.idle(Instant::now());
    response
}

async fn route(
    req: Request<Incoming>,
    auth: &AuthHandler,
    peer: IpAddr,
    slot: &Slot,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        CREATE_PATH => create(req, auth, peer, slot).await,
        REGISTRATION_PATH if req.method() == Method::GET => {
            let body = registration_body(auth.registration_mode());
            let mut r = reply_with(StatusCode::OK, Bytes::from(body));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        REGISTRATION_PATH => reply(StatusCode::NOT_IMPLEMENTED),
        _ => reply(StatusCode::NOT_FOUND),
    }
}

/// `/create`.
async fn create(
    req: Request<Incoming>,
    auth: &AuthHandler,
    peer: IpAddr,
    slot: &Slot,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        // As the reference's HTTP server answers a method it has no handler for.
        return reply(StatusCode::NOT_IMPLEMENTED);
    }
    let Some(len) = declared_length(req.headers()) else {
        debug!("/create without an acceptable Content-Length");
        return reply(StatusCode::BAD_REQUEST);
    };
    let client = client_address(req.headers());
    let body = Limited::new(req.into_body(), len).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            debug!("/create body: {e}");
            return reply(StatusCode::BAD_REQUEST);
        }
        Err(_) => {
            debug!(%peer, "/create body did not arrive in time");
            return reply(StatusCode::REQUEST_TIMEOUT);
        }
    };
    slot.busy();
    let (addr, password) = match parse_create(&body) {
        Ok(v) => v,
        Err(why) => {
            debug!(?why, "/create body refused");
            return reply(StatusCode::BAD_REQUEST);
        }
    };
    let asker = Asker {
        peer: Some(peer),
        client,
    };
    let verdict = auth
        .create_or_verify(addr, password.to_owned(), asker)
        .await;
    let (status, result, busy) = match verdict {
        Ok(AuthVerdict::Accepted) => (StatusCode::OK, LookupResult::Found, false),
        Ok(AuthVerdict::Refused(Refused::Rules)) => {
            (StatusCode::FORBIDDEN, LookupResult::NotFound, false)
        }
        // Still 403 for Dovecot ("unknown user"); the header tells the newemail CGI that a
        // retry may succeed.
        Ok(AuthVerdict::Refused(Refused::Busy)) => {
            (StatusCode::FORBIDDEN, LookupResult::NotFound, true)
        }
        Err(e) => {
            error!("account creation failed: {e}");
            (StatusCode::FORBIDDEN, LookupResult::Failed, false)
        }
    };
    auth.metrics().lookup(LookupKind::Create, result);
    let mut r = reply(status);
    if busy {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(BUSY_RETRY_AFTER));
    }
    r
}

/// Serves `/create` and `/registration` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    auth: Arc<AuthHandler>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let builder = Arc::new(builder);
    let conns = Arc::new(Conns::new(MAX_PER_PEER, MAX_TOTAL));
    // The accept loop's own bound is only a backstop: `conns` keeps the count at
    // MAX_TOTAL by closing idle connections, which it can only do for connections it sees.
    accept_loop(
        &listener,
        MAX_TOTAL * 2,
        &stop,
        GRACE,
        |(stream, peer): (tokio::net::TcpStream, SocketAddr)| {
            let auth = Arc::clone(&auth);
            let builder = Arc::clone(&builder);
            let stop = stop.clone();
            let slot = conns.admit(peer.ip(), Instant::now());
            async move {
                let Some(slot) = slot else {
                    debug!(%peer, "connection refused: every connection of the peer is busy");
                    return;
                };
                serve_connection(stream, peer.ip(), &builder, auth, Arc::new(slot), stop).await;
            }
        },
    )
    .await
}

/// One connection until it ends, is evicted to make room, or the service stops.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: IpAddr,
    builder: &hyper::server::conn::http1::Builder,
    auth: Arc<AuthHandler>,
    slot: Arc<Slot>,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let evicted = slot.close.clone();
    let service = hyper::service::service_fn(move |req| {
        let auth = Arc::clone(&auth);
        let slot = Arc::clone(&slot);
        async move { Ok::<_, Infallible>(handle(req, &auth, peer, &slot).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = evicted.cancelled() => {
            debug!(%peer, "idle connection closed to make room");
            return;
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, "HTTP connection ended: {e}");
    }
}

/// The whole `main` of HTTP mode: config, legacy migration, bind (or the socket systemd
/// passed), readiness, serve until SIGTERM/SIGINT.
pub fn run(ini: &std::path::Path) -> ExitCode {
    service::init_tracing();
    let config = match service::load_config(ini) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    if let Err(e) = crate::migrate::migrate_if_present(&config) {
        return service::start_failed(&e);
    }
    service::raise_nofile_limit();
    service::run_daemon(|stop| async move {
        let addr = SocketAddr::from((config.doveauth_http_host, config.doveauth_http_port));
        let listener = service::bind_tcp(addr).map_err(|e| service::start_failed(&e))?;
        let auth = Arc::new(AuthHandler::new(config));
        let a = Arc::clone(&auth);
        chatmaild::metrics::spawn_publisher(
            &chatmaild::metrics::socket_from_env(default_metrics_socket()),
            Arc::new(move |enc: &mut chatmaild::metrics::Encoder| a.metrics().render(enc)),
            stop.clone(),
        );
        info!(%addr, "doveauth serving HTTP /create and /registration");
        Ok(async move { service::stopped("doveauth", serve(listener, auth, stop).await) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_splits_at_the_first_tab() {
        assert_eq!(parse_create(b"a@b\tp\tq"), Ok(("a@b", "p\tq")));
        assert_eq!(parse_create(b"a@b\t"), Ok(("a@b", "")));
        assert_eq!(parse_create(b"a@b"), Ok(("a@b", "")));
        assert_eq!(parse_create("a@b\tpäss".as_bytes()), Ok(("a@b", "päss")));
        assert_eq!(parse_create(b"a@b\tp\xff"), Err(BadBody::NotUtf8));
        assert_eq!(parse_create(b"a@b\tp\0q"), Err(BadBody::Nul));
        assert_eq!(parse_create(b"a\0@b\tpq"), Err(BadBody::Nul));
    }

    #[test]
    fn registration_answers_the_words_of_registration_status() {
        assert_eq!(registration_body(RegistrationMode::Open), "open\n");
        assert_eq!(
            registration_body(RegistrationMode::InviteOnly),
            "invite-only\n"
        );
        assert_eq!(registration_body(RegistrationMode::Closed), "close\n");
    }

    #[test]
    fn client_address_header() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(client_address(&h), None, "missing");
        h.insert(CLIENT_HEADER, HeaderValue::from_static(" 192.0.2.1 "));
        assert_eq!(client_address(&h), Some("192.0.2.1".parse().unwrap()));
        h.insert(CLIENT_HEADER, HeaderValue::from_static("2001:db8::5"));
        assert_eq!(client_address(&h), Some("2001:db8::5".parse().unwrap()));
        for bad in ["", "x", "192.0.2.1, 192.0.2.2", "192.0.2.1:80"] {
            h.insert(CLIENT_HEADER, HeaderValue::from_static(bad));
            assert_eq!(client_address(&h), None, "{bad:?}");
        }
        h.insert(CLIENT_HEADER, HeaderValue::from_static("192.0.2.1"));
        h.append(CLIENT_HEADER, HeaderValue::from_static("192.0.2.2"));
        assert_eq!(client_address(&h), None, "twice");
    }

    #[test]
    fn content_length_rules() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(declared_length(&h), None, "missing");
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("512"));
        assert_eq!(declared_length(&h), Some(512));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("513"));
        assert_eq!(declared_length(&h), None, "too long");
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("x"));
        assert_eq!(declared_length(&h), None, "not a number");
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("-1"));
        assert_eq!(declared_length(&h), None, "negative");
    }
}
