//! Reinjection of an accepted message into Postfix (SPEC §6.3): a small SMTP client.
//!
//! The message goes out byte-for-byte as it was received (after our own dot-stuffing, which
//! the receiver undoes), so DKIM signatures stay valid. `TCP_NODELAY` is set and the
//! end-of-data line is written in the same buffer flush as the last message bytes: with
//! Nagle on and the final dot written separately, each message would stall for a
//! delayed-ACK period. The remote reply is relayed with its class (4xx stays 4xx); a
//! connection failure becomes a 451 so the sender retries and nothing accepted is lost.
//!
//! Incoming mail is reinjected with `NOTIFY=NEVER` on every recipient (RFC 3461; Postfix's
//! reinjection listener offers `DSN`): should Postfix later fail to deliver it (the account
//! deleted or blocked meanwhile, a mailbox over quota until `maximal_queue_lifetime`), it
//! sends no bounce. A bounce would carry the message, which passed only the incoming filter,
//! to its envelope sender: out through the transport to a sender that may be forged
//! (backscatter of content the outgoing filter never saw), or into a local mailbox. Postfix's
//! bounce daemon counts only recipients whose NOTIFY includes FAILURE (or who have none)
//! and cancels the notice when there are none (`bounce_notify_service.c`, 3.7 and 3.10).

use std::sync::Arc;
use std::time::Duration;

use chatmail_smtp::client::{Client, Sent, Step, connect};
use chatmail_smtp::{Pool, ReplyLines, stuffed_slices};
use tracing::{debug, warn};

use crate::filter_reply::{FilterReply, Reply, printable};

/// Upper bound of one whole reinjection.
const REINJECT_DEADLINE: Duration = Duration::from_secs(60);
/// Most idle connections kept for reuse. Each holds one of Postfix's reinjection smtpd
/// processes (the relay allows 100 per port), so keep well below that.
const POOL_MAX: usize = 16;
/// How long an idle connection is kept; well below Postfix's `smtpd_timeout` (300 s), so
/// Postfix never has to time out (and log) one of ours.
const POOL_IDLE: Duration = Duration::from_secs(10);
/// How often expired idle connections are closed.
const REAP_EVERY: Duration = Duration::from_secs(2);
/// The pool holds connections to one listener only.
const POOL_KEY: &str = "";

/// Where and how to reinject.
#[derive(Debug, Clone)]
pub struct Reinjector {
    /// `host:port` of Postfix's reinjection listener.
    pub addr: String,
    /// Time allowed for connecting and for each reply.
    pub timeout: Duration,
    /// Connections kept open between messages (Postfix serves many transactions per
    /// connection, so each message need not pay for connect, greeting and EHLO).
    pool: Arc<Pool<Client>>,
    /// Ask for no delivery status notifications (`NOTIFY=NEVER`): incoming mail.
    notify_never: bool,
}

/// Why a reinjection attempt failed on our side (not a remote rejection).
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("{0}")]
    Wire(#[from] chatmail_smtp::Error),
    #[error("timed out")]
    Timeout,
    /// A kept-alive connection turned out to be closed before the transaction began.
    #[error("connection closed by the server")]
    Stale,
}

/// The reply as we pass it on: same code, the remote text lines joined.
fn relay(reply: &ReplyLines) -> Reply {
    Reply::new(reply.code, printable(&reply.text()))
}

/// An I/O failure, EOF or nonsense at the first reply on a kept connection, or a 421 there,
/// means the server had closed it; the message was not sent yet.
fn is_stale(step: Step, e: &chatmail_smtp::Error) -> bool {
    use chatmail_smtp::Error as E;
    step == Step::Mail
        && matches!(
            e,
            E::Read(_) | E::Write(_) | E::Closed | E::Malformed(_) | E::TooLong | E::TooManyLines
        )
}

/// The envelope as it is sent on.
struct Outbound<'a> {
    mail_from: &'a str,
    rcpt_to: &'a [String],
    smtputf8: bool,
}

/// What the SMTP client session ended with.
enum Outcome {
    Accepted,
    Rejected(ReplyLines),
}

impl Reinjector {
    /// A reinjector for `addr` (`host:port`).
    ///
    /// Inside a tokio runtime, a task closes idle connections (with QUIT) once they
    /// expire; it ends when the reinjector is dropped.
    pub fn new(addr: String, timeout: Duration) -> Reinjector {
        let pool: Arc<Pool<Client>> = Arc::new(Pool::new(POOL_MAX, POOL_IDLE));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&pool);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(REAP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(pool) = weak.upgrade() else { return };
                    for conn in pool.expired() {
                        conn.quit().await;
                    }
                }
            });
        }
        Reinjector {
            addr,
            timeout,
            pool,
            notify_never: false,
        }
    }

    /// This reinjector with `NOTIFY=NEVER` on every recipient, so Postfix never bounces what
    /// it reinjects (see the module documentation).
    pub fn without_notifications(self) -> Reinjector {
        Reinjector {
            notify_never: true,
            ..self
        }
    }

    /// How many connections are kept open for reuse right now.
    pub fn idle_connections(&self) -> usize {
        self.pool.len()
    }

    /// Sends `message` from `mail_from` (empty: null sender) to `rcpt_to`; returns the reply
    /// for our client: `250 OK`, the remote rejection, or a 451.
    /// `smtputf8` passes the client's SMTPUTF8 declaration on (it is also added for
    /// non-ASCII addresses).
    pub async fn send(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        smtputf8: bool,
        message: &[u8],
    ) -> Reply {
        // The whole reinjection stays within Postfix's 100 s proxy timeout (together with
        // the DKIM deadline), so Postfix never gives up on a message we then deliver.
        let envelope = Outbound {
            mail_from,
            rcpt_to,
            smtputf8: smtputf8 || !mail_from.is_ascii() || rcpt_to.iter().any(|r| !r.is_ascii()),
        };
        let session = self.session(&envelope, message);
        let result = tokio::time::timeout(REINJECT_DEADLINE, session)
            .await
            .unwrap_or(Err(ClientError::Timeout));
        match result {
            Ok(Outcome::Accepted) => Reply::OK,
            Ok(Outcome::Rejected(r)) => {
                warn!(code = r.code, "reinjection rejected: {}", r.text());
                relay(&r)
            }
            Err(e) => {
                warn!(addr = %self.addr, "reinjection failed: {e}");
                Reply::REINJECT_FAILED
            }
        }
    }

    async fn session(&self, env: &Outbound<'_>, message: &[u8]) -> Result<Outcome, ClientError> {
        // A kept connection may have been closed by the server meanwhile; that shows at
        // the MAIL command, before anything of the message was sent, so a fresh connection
        // can safely take over.
        while let Some(conn) = self.pool.take(POOL_KEY) {
            match self.transaction(conn, env, message).await {
                Err(ClientError::Stale) => debug!("kept connection was closed; reconnecting"),
                other => return other,
            }
        }
        let conn = match self.connect().await? {
            Ok(conn) => conn,
            Err(rejected) => return Ok(Outcome::Rejected(rejected)),
        };
        match self.transaction(conn, env, message).await {
            Err(ClientError::Stale) => Err(ClientError::Wire(chatmail_smtp::Error::Closed)),
            other => other,
        }
    }

    /// A new connection after greeting and EHLO; `Err` holds a refusal of either.
    async fn connect(&self) -> Result<Result<Client, ReplyLines>, ClientError> {
        let stream = connect(self.addr.as_str(), self.timeout).await?;
        let mut conn = Client::new(stream, self.timeout);
        let greeting = conn.read_reply().await?;
        if greeting.class() != 2 {
            return Ok(Err(greeting));
        }
        let ehlo = conn.ehlo("filtermail").await?;
        if ehlo.class() != 2 {
            return Ok(Err(ehlo));
        }
        Ok(Ok(conn))
    }

    /// One mail transaction on `conn`; the connection goes back to the pool when the
    /// transaction completed cleanly.
    async fn transaction(
        &self,
        mut conn: Client,
        env: &Outbound<'_>,
        message: &[u8],
    ) -> Result<Outcome, ClientError> {
        let mail = conn.mail_command(env.mail_from, !message.is_ascii(), env.smtputf8, None);
        // With PIPELINING (RFC 2920; Postfix offers it) the envelope goes out in one write
        // and the replies are read in order afterwards; otherwise one command at a time.
        let pipelined = conn.capabilities().pipelining;
        let rcpts: Vec<String> = env
            .rcpt_to
            .iter()
            .map(|r| conn.rcpt_command(r, self.notify_never))
            .collect();
        match conn.envelope_commands(&mail, &rcpts, pipelined).await {
            Ok(Sent::Accepted) => {}
            // A kept connection that the server closed (or is closing) meanwhile.
            Ok(Sent::Refused(Step::Mail, r)) if r.code == 421 => return Err(ClientError::Stale),
            // The connection is dropped, which also ends a DATA the server may have
            // accepted after an earlier pipelined refusal.
            Ok(Sent::Refused(_, r)) => return Ok(Outcome::Rejected(r)),
            Err((step, e)) if is_stale(step, &e) => return Err(ClientError::Stale),
            Err((_, e)) => return Err(e.into()),
        }
        // Our DATA reader always ends a message in CRLF; other front ends might not.
        let crlf: &[u8] = if message.is_empty() || message.ends_with(b"\r\n") {
            b""
        } else {
            b"\r\n"
        };
        let parts: Vec<&[u8]> = stuffed_slices(message).chain([crlf, b".\r\n"]).collect();
        let reply = conn.data(&parts, self.timeout).await?;
        debug!(code = reply.code, "reinjection done");
        if reply.class() == 2 {
            self.pool.put(POOL_KEY, conn);
            Ok(Outcome::Accepted)
        } else {
            Ok(Outcome::Rejected(reply))
        }
    }
}
