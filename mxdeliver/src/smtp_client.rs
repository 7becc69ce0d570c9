//! SMTP delivery to one remote MX host (RFC 5321, RFC 3207 STARTTLS) on the shared client.
//!
//! It speaks exactly the dialogue SPEC §6.12 needs — greeting, `EHLO`, mandatory `STARTTLS`,
//! `EHLO`, `MAIL`, `RCPT`…, `DATA`, the already dot-stuffed message — and classifies every
//! outcome as either a remote rejection (a 4xx/5xx reply to pass back) or a connection-level
//! failure (try the next MX host). A reply the dialogue does not expect is never taken for
//! success: a server without `STARTTLS` is a failure, not its `250` EHLO reply.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chatmail_smtp::client::{Client, Sent, Step, connect_any};
use chatmail_smtp::{Reply, ReplyLines};
use tokio_rustls::rustls::ClientConfig;

/// Connecting to all addresses of a host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting for a reply to a command, or for a write.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting for the reply after the final `.` (RFC 5321 §4.5.3.2.6 allows 10 minutes; Postfix
/// waits 10 minutes for us, so we must answer earlier).
const DATA_END_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a delivery over one connection did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The remote server answered 4xx/5xx: pass its reply back to Postfix.
    Rejected(Reply),
    /// Connect, I/O, TLS or protocol failure: try the next host.
    Connection(Broken),
}

/// A connection-level failure; its text goes into the reply when every host failed.
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    /// The shared client failed (connect, I/O, timeout, malformed reply, TLS).
    #[error("{0}")]
    Wire(#[from] chatmail_smtp::Error),
    /// The greeting was not 220.
    #[error("greeting: {0}")]
    Greeting(Reply),
    /// The EHLO reply was not 250.
    #[error("EHLO: {0}")]
    Ehlo(Reply),
    /// STARTTLS is required and was not offered.
    #[error("server does not offer STARTTLS")]
    NoStartTls,
    /// STARTTLS got no 220.
    #[error("STARTTLS: {0}")]
    StartTls(Reply),
    /// The EHLO reply after STARTTLS was not 250.
    #[error("EHLO after STARTTLS: {0}")]
    EhloAfterTls(Reply),
    /// A reply that is neither what the step expects nor a 4xx/5xx.
    #[error("unexpected reply to {0}: {1}")]
    Unexpected(Step, Reply),
}

impl From<chatmail_smtp::Error> for Failure {
    fn from(e: chatmail_smtp::Error) -> Self {
        Failure::Connection(Broken::Wire(e))
    }
}

/// Whether `STARTTLS` is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `STARTTLS` must be offered and succeed.
    Required,
    /// Plain SMTP (only for destinations known to offer no TLS).
    None,
}

/// How to reach and authenticate one MX host.
#[derive(Debug, Clone)]
pub struct Target {
    /// The MX host name (or the IP of a domain literal), for TLS verification and logs.
    pub host: String,
    /// The addresses to connect to, all tried in parallel.
    pub addrs: Vec<IpAddr>,
    /// The destination port (25 in production).
    pub port: u16,
    /// `STARTTLS` requirement.
    pub tls: TlsMode,
    /// TLS client configuration (verifying or not, by destination).
    pub tls_config: Arc<ClientConfig>,
}

/// One envelope and message to send.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The reverse path, empty for the null sender.
    pub sender: &'a str,
    /// Recipients, all of one domain.
    pub recipients: &'a [String],
    /// The message in wire form: dot-stuffed, ending with the `.` line.
    pub wire: &'a [u8],
    /// The client asked for SMTPUTF8.
    pub smtputf8: bool,
}

/// A 4xx/5xx becomes a rejection, anything else unexpected a protocol failure.
fn unexpected(step: Step, reply: &ReplyLines) -> Failure {
    if (400..600).contains(&reply.code) {
        Failure::Rejected(reply.to_reply())
    } else {
        Failure::Connection(Broken::Unexpected(step, reply.to_reply()))
    }
}

/// An established session, ready for `MAIL FROM` (or `RSET` when reused).
#[derive(Debug)]
pub struct SmtpConn {
    client: Client,
}

impl SmtpConn {
    /// Connects, greets, and (unless `TlsMode::None`) upgrades with `STARTTLS`.
    pub async fn open(target: &Target, ehlo_name: &str) -> Result<SmtpConn, Failure> {
        let addrs: Vec<SocketAddr> = target
            .addrs
            .iter()
            .map(|&ip| SocketAddr::new(ip, target.port))
            .collect();
        let tcp = connect_any(&addrs, CONNECT_TIMEOUT).await?;
        let mut client = Client::new(tcp, COMMAND_TIMEOUT);
        let greeting = client.read_reply().await?;
        if greeting.code != 220 {
            return Err(Failure::Connection(Broken::Greeting(greeting.to_reply())));
        }
        let hello = client.ehlo(ehlo_name).await?;
        if hello.code != 250 {
            return Err(Failure::Connection(Broken::Ehlo(hello.to_reply())));
        }
        if target.tls == TlsMode::None {
            return Ok(SmtpConn { client });
        }
        if !client.capabilities().starttls {
            return Err(Failure::Connection(Broken::NoStartTls));
        }
        let reply = client.command("STARTTLS").await?;
        if reply.code != 220 {
            return Err(Failure::Connection(Broken::StartTls(reply.to_reply())));
        }
        let mut client = client
            .start_tls(target.tls_config.clone(), &target.host)
            .await?;
        let hello = client.ehlo(ehlo_name).await?;
        if hello.code != 250 {
            return Err(Failure::Connection(Broken::EhloAfterTls(hello.to_reply())));
        }
        Ok(SmtpConn { client })
    }

    /// `RSET` before reusing an idle connection; `false` means the connection is unusable.
    pub async fn reset(&mut self) -> bool {
        self.client.reset().await
    }

    /// Sends one message. `Ok` only after the server's `250` to the final `.`.
    pub async fn send(&mut self, env: Envelope<'_>) -> Result<(), Failure> {
        let eight_bit = !env.wire.is_ascii();
        // SIZE (RFC 1870) lets a server refuse an oversized message before we send it.
        let mail =
            self.client
                .mail_command(env.sender, eight_bit, env.smtputf8, Some(env.wire.len()));
        match self.client.envelope(&mail, env.recipients, false).await {
            Ok(Sent::Accepted) => {}
            Ok(Sent::Refused(step, reply)) => return Err(unexpected(step, &reply)),
            Err((_, e)) => return Err(e.into()),
        }
        // `wire` ends with the "." line, so the terminator leaves with the last bytes.
        let reply = self.client.data(&[env.wire], DATA_END_TIMEOUT).await?;
        if reply.code != 250 {
            return Err(unexpected(Step::EndOfData, &reply));
        }
        Ok(())
    }

    /// Says goodbye without waiting long for the answer.
    pub async fn quit(self) {
        self.client.quit().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_4xx_5xx_are_rejections() {
        let r = |code| ReplyLines {
            code,
            lines: vec!["x".into()],
        };
        assert!(matches!(
            unexpected(Step::Rcpt, &r(550)),
            Failure::Rejected(_)
        ));
        assert!(matches!(
            unexpected(Step::Rcpt, &r(451)),
            Failure::Rejected(_)
        ));
        assert!(matches!(
            unexpected(Step::Data, &r(250)),
            Failure::Connection(_)
        ));
        let Failure::Connection(e) = unexpected(Step::Rcpt, &r(354)) else {
            panic!()
        };
        assert_eq!(e.to_string(), "unexpected reply to RCPT TO: 354 x");
    }
}
