//! The HTTP `/mxdeliv` listener of incoming mode (SPEC §6.11): other relays POST a message
//! with its envelope in headers instead of speaking SMTP; nginx terminates TLS in front.
//!
//! HTTP/1.0, HTTP/1.1 and cleartext HTTP/2 (prior knowledge) are served on one port. The
//! body is streamed through the same DATA reader as SMTP (dot-unstuffing, size limit), so
//! at most `max_message_size` bytes of a message are ever held, and the message then takes
//! exactly the SMTP path: [`Filter::process`].
//!
//! Status codes: accepted → 200 `250 OK`; oversized → 413 as soon as that is known (the
//! rest of the body is discarded, within bounds, so the client can read it); a permanent rejection (5xx) →
//! 400 with the SMTP reply text, also for an envelope the SMTP listener refuses at `MAIL`
//! or `RCPT` (a sender of our domain, a recipient without a mailbox; the whole request, the
//! body unread); a temporary failure (4xx: DKIM key lookup, reinjection
//! unreachable, ...) → 503 with the SMTP reply text and `Retry-After`. The reference answers
//! 400 to everything; its senders fall back to SMTP on any non-2xx status, where the same
//! temporary failure becomes a 4xx SMTP reply and the message is retried. 503 keeps that
//! behaviour for such senders while telling every other HTTP client (and nginx's logs) that
//! the failure is temporary, which a 400 would not.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use chatmaild::accept::accept_loop;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::Filter;
use crate::budget::Reservation;
use crate::error::Error;
use crate::filter_reply::{FilterReply, Reply};
use crate::policy::MailParams;
use crate::smtp::MAX_RECIPIENTS;

mod body;
mod envelope;
mod timeout;

pub use body::MessageBody;
pub use envelope::envelope;
pub use timeout::TimeoutIo;

/// Envelope sender header (absent: the null sender).
pub const HEADER_MAIL_FROM: &str = "x-mail-from";
/// Envelope recipient header, once per recipient.
pub const HEADER_RCPT_TO: &str = "x-mail-to";
/// Read and write timeouts of a connection (SPEC §6.11).
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Most connections served at once; further clients wait in the listen queue.
const MAX_CONNECTIONS: usize = 2048;
/// Time requests in flight get to finish after a stop request.
const GRACE: Duration = Duration::from_secs(30);
/// Header lines allowed in one HTTP/1 request: a recipient header each, plus the usual.
const MAX_HEADERS: usize = MAX_RECIPIENTS + 64;
/// Header bytes allowed in one HTTP/2 request (a thousand long addresses fit).
const MAX_HEADER_LIST_SIZE: u32 = 512 * 1024;
/// Concurrent requests on one HTTP/2 connection; each may hold a message of up to
/// `max_message_size` bytes, so this bounds a single client's memory use.
const MAX_STREAMS: u32 = 16;
/// Seconds a sender is asked to wait after a temporary failure.
const RETRY_AFTER_SECS: &str = "60";
/// Body of a 405 reply.
const METHOD_NOT_ALLOWED: &str = "Method Not Allowed";
/// Body of a 400 reply to a request without recipients.
pub const NO_RECIPIENTS: &str = "400 Missing X-MAIL-TO header (one per recipient)";

/// Serves `/mxdeliv` on `listener` until `stop` is cancelled; requests in flight then get
/// a grace period, idle keep-alive connections are closed at once.
pub async fn run(
    listener: TcpListener,
    filter: Arc<Filter>,
    stop: CancellationToken,
) -> Result<(), Error> {
    let builder = Arc::new(builder());
    let result = accept_loop(
        &listener,
        MAX_CONNECTIONS,
        &stop,
        GRACE,
        |(stream, peer)| {
            let filter = Arc::clone(&filter);
            let builder = Arc::clone(&builder);
            let stop = stop.clone();
            async move {
                if let Err(e) = connection(stream, &builder, filter, &stop).await {
                    debug!(%peer, "HTTP connection ended: {e}");
                }
            }
        },
    )
    .await
    .map_err(Error::Accept);
    info!("HTTP listener stopped");
    result
}

/// HTTP/1 and HTTP/2 (detected from the first bytes) with room for many recipients.
fn builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // The request head must arrive within the I/O timeout as a whole, not merely byte by
    // byte, so trickling clients cannot hold connections.
    b.http1()
        .max_headers(MAX_HEADERS)
        .timer(TokioTimer::new())
        .header_read_timeout(IO_TIMEOUT);
    b.http2()
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_concurrent_streams(MAX_STREAMS)
        .timer(TokioTimer::new());
    b
}

/// One HTTP connection (any number of requests).
async fn connection(
    stream: TcpStream,
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    filter: Arc<Filter>,
    stop: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    stream.set_nodelay(true)?;
    let _in_flight = filter.metrics.session();
    let io = TokioIo::new(TimeoutIo::new(stream, IO_TIMEOUT));
    let f = Arc::clone(&filter);
    let service = hyper::service::service_fn(move |req| {
        let filter = Arc::clone(&f);
        async move { Ok::<_, Infallible>(counted(handle(req, &filter).await, &filter)) }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    conn.await
}

/// Counts the response's SMTP reply (set by [`reply_response`]) as a message outcome.
fn counted(r: Response<Full<Bytes>>, filter: &Filter) -> Response<Full<Bytes>> {
    if let Some(reply) = r.extensions().get::<Reply>() {
        filter.metrics.message(reply);
    }
    r
}

/// A response with a plain-text body.
fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The HTTP status for the outcome of a message, as described in the module docs.
pub fn status_for(reply: &Reply) -> StatusCode {
    match reply.code() {
        200..=299 => StatusCode::OK,
        552 => StatusCode::PAYLOAD_TOO_LARGE,
        400..=499 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The response carrying `reply` as its body.
pub fn reply_response(reply: &Reply) -> Response<Full<Bytes>> {
    let status = status_for(reply);
    let mut r = text(status, reply.to_string());
    r.extensions_mut().insert(reply.clone());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    r
}

/// One `/mxdeliv` request (the path is not checked).
async fn handle(req: Request<Incoming>, filter: &Arc<Filter>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED);
    }
    let env = match envelope(req.headers()) {
        Ok(env) => env,
        Err(why) => {
            debug!("HTTP request refused: {why}");
            filter.metrics.envelope_refused(why);
            return text(StatusCode::BAD_REQUEST, why);
        }
    };
    // As SMTP refuses them at MAIL and RCPT: the whole request, before reading the body.
    if let Err(reply) = filter.local.check_envelope(&env) {
        debug!("HTTP request refused: {reply}");
        filter.metrics.command(&reply);
        return text(StatusCode::BAD_REQUEST, reply.to_string());
    }
    // A declared length that cannot fit even after undoing dot-stuffing (which removes at
    // most one byte per line of at least three) is refused before reading anything.
    if let Some(len) = req.body().size_hint().exact()
        && len > max_stuffed_size(filter.max_message_size)
    {
        warn!("HTTP message exceeds max_message_size");
        // HTTP/1: dropping the unread body closes the connection without inviting the body
        // (no `100 Continue`). HTTP/2 clients send regardless; let their stream end cleanly.
        if req.version() == hyper::Version::HTTP_2 {
            drain(req.into_body(), filter.max_message_size);
        }
        return reply_response(&Reply::TOO_BIG);
    }
    if filter.budget.exhausted() {
        warn!("memory budget exhausted, deferring an HTTP delivery");
        drain(req.into_body(), filter.max_message_size);
        return reply_response(&Reply::OVER_BUDGET);
    }
    let (message, _reservation) = match read_message(req.into_body(), filter).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    debug!(from = %env.mail_from, rcpts = env.rcpt_to.len(), "HTTP delivery");
    let reply = filter.process(env, MailParams::default(), message).await;
    reply_response(&reply)
}

/// Reads the body into a message, holding its share of the memory budget; `Err` is the
/// answer when it is broken, too big or over the budget (the rest is drained).
async fn read_message(
    mut body: Incoming,
    filter: &Arc<Filter>,
) -> Result<(Vec<u8>, Reservation), Response<Full<Bytes>>> {
    let mut reader =
        MessageBody::with_budget(filter.max_message_size, Some(Arc::clone(&filter.budget)));
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                // The client went away or broke the framing; nobody may read the answer.
                debug!("HTTP body: {e}");
                filter.metrics.protocol_error();
                return Err(text(StatusCode::BAD_REQUEST, "400 Broken request body"));
            }
        };
        if let Ok(data) = frame.into_data()
            && let Err(reply) = reader.feed(&data)
        {
            if reply == Reply::TOO_BIG {
                warn!("HTTP message exceeds max_message_size");
            }
            drain(body, filter.max_message_size);
            return Err(reply_response(&reply));
        }
    }
    reader.finish().map_err(|reply| reply_response(&reply))
}

/// Reads and discards the rest of a refused request body in the background, at most
/// `budget` bytes and [`IO_TIMEOUT`] long, while the answer goes out at once.
///
/// Dropping the body unread instead would make HTTP/2 reset the stream and HTTP/1 close the
/// connection with unread data, which makes the kernel send a TCP reset; either can make a
/// client that is still uploading lose the answer it was sent (nginx's "lingering close"
/// exists for the same reason). Nothing is stored, and the bounds keep a client from
/// holding the connection with an endless body.
fn drain(mut body: Incoming, budget: u64) {
    tokio::spawn(async move {
        let mut seen: u64 = 0;
        let _ = tokio::time::timeout(IO_TIMEOUT, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    seen = seen.saturating_add(data.len() as u64);
                    if seen > budget {
                        break;
                    }
                }
            }
        })
        .await;
    });
}

/// The most body bytes a message of `max` bytes can take in DATA form.
fn max_stuffed_size(max: u64) -> u64 {
    max.saturating_add(max / 3).saturating_add(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        assert_eq!(status_for(&Reply::OK), StatusCode::OK);
        assert_eq!(status_for(&Reply::TOO_BIG), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            status_for(&Reply::ENCRYPTION_NEEDED),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(&Reply::NO_VALID_DKIM_SIGNATURE),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(&Reply::REINJECT_FAILED),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let r = reply_response(&Reply::DKIM_TEMPFAIL);
        assert_eq!(r.headers().get(RETRY_AFTER).unwrap(), "60");
    }

    fn body(pieces: &[&[u8]], max: u64) -> Result<Vec<u8>, Reply> {
        let mut b = MessageBody::new(max);
        for p in pieces {
            b.feed(p)?;
        }
        b.finish().map(|(m, _)| m)
    }

    #[test]
    fn body_table() {
        let ok: &[(&[&[u8]], &[u8])] = &[
            (&[b""], b""),
            (&[b"a\r\n"], b"a\r\n"),
            (&[b"..x\r\n", b"..\r\n"], b".x\r\n.\r\n"),
            (&[b"a\r\n.", b".b\r\n"], b"a\r\n.b\r\n"),
            (&[b"a\r\n", b".\r\n"], b"a\r\n"),
            (&[b"a\r\n.\r\n", b""], b"a\r\n"),
        ];
        for (pieces, want) in ok {
            assert_eq!(body(pieces, 100).as_deref(), Ok(*want), "{pieces:?}");
        }
        let bad: &[(&[&[u8]], Reply)] = &[
            (&[b"a"], Reply::INVALID_DATA),
            (&[b"a\r\n."], Reply::INVALID_DATA),
            (&[b"a\r\n.\r"], Reply::INVALID_DATA),
            (&[b"a\r\n.\r\nb\r\n"], Reply::INVALID_DATA),
            (&[b"a\r\n.\r\n", b"b\r\n"], Reply::INVALID_DATA),
            (&[b"0123456789\r\n"], Reply::TOO_BIG),
            (&[b"01234567\r\n", b"x"], Reply::TOO_BIG),
        ];
        for (pieces, want) in bad {
            assert_eq!(body(pieces, 10), Err(want.clone()), "{pieces:?}");
        }
        // Stuffing does not count against the limit: 10 bytes unstuffed.
        assert_eq!(body(&[b"..2345678\r\n"], 10).unwrap().len(), 10);
        assert!(max_stuffed_size(10) >= 14);
    }
}
