//! Loopback peers for the transport tests: the DNS (chatmail-tests' fake), an SMTP server with STARTTLS and an
//! HTTPS `/mxdeliv` server, all using a test CA, plus an LMTP client playing Postfix.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test harness: any failure should fail the test loudly"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{ServerConfig, crypto::ring};
use tokio_util::sync::CancellationToken;

// ---------- test CA ----------

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "mxdeliver test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn root(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A TLS server configuration with a leaf certificate for `names`.
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let leaf = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), self.root()], key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

// ---------- DNS ----------

/// The fake DNS of the remote domains.
pub use chatmail_tests::dns::{Zone, start as dns_server};

// ---------- SMTP ----------

/// What the remote SMTP server received (`wire`: the message as sent, dot-stuffed).
pub use chatmail_smtp::testing::Received;
use chatmail_smtp::testing::{FakeServer, Script, Transcript};

pub type Mailbox = Arc<Mutex<Vec<Received>>>;

/// The scripted fake MX on `listener`, offering STARTTLS with `tls` (none: no STARTTLS);
/// recipients starting with `reject` get `550 5.1.1 No such user`.
pub async fn smtp_server(listener: TcpListener, tls: Option<Arc<ServerConfig>>) -> Mailbox {
    let mut script = Script::mx();
    script.tls = tls;
    script.refuse_rcpt = Some(("reject", "550 5.1.1 No such user"));
    FakeServer::serve(listener, script).received
}

/// [`smtp_server`] on a new port of 127.0.0.1: (port, mailbox).
pub async fn smtp_mx(tls: Option<Arc<ServerConfig>>) -> (u16, Mailbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, smtp_server(listener, tls).await)
}

// ---------- HTTPS /mxdeliv ----------

#[derive(Debug, Clone)]
pub struct Posted {
    pub path: String,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub body: Vec<u8>,
}

/// What the test `/mxdeliv` server answers: status, extra header lines (each ending in
/// CRLF) and body; `Content-Length` and `Connection: close` are added.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: &'static str,
    pub body: &'static str,
}

/// A `/mxdeliv` server answering like chatmail filtermail: 200 `250 OK`, or for any other
/// status its refusal text.
pub async fn https_server(listener: TcpListener, tls: Arc<ServerConfig>, status: u16) -> Requests {
    let body = if status == 200 {
        "250 OK"
    } else {
        "523 Encryption Needed"
    };
    https_server_answering(
        listener,
        tls,
        Answer {
            status,
            headers: "",
            body,
        },
    )
    .await
}

pub type Requests = Arc<Mutex<Vec<Posted>>>;

/// [`https_server`] on a new port of 127.0.0.1: (port, requests).
pub async fn https_mx(tls: Arc<ServerConfig>, status: u16) -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, https_server(listener, tls, status).await)
}

/// [`https_server_answering`] on a new port of 127.0.0.1: (port, requests).
pub async fn https_mx_answering(tls: Arc<ServerConfig>, answer: Answer) -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, https_server_answering(listener, tls, answer).await)
}

/// A `/mxdeliv` server giving `answer` to every request.
pub async fn https_server_answering(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    answer: Answer,
) -> Requests {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let p = posted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (tls, p, answer) = (tls.clone(), p.clone(), answer.clone());
            tokio::spawn(async move {
                let Ok(stream) = TlsAcceptor::from(tls).accept(stream).await else {
                    return;
                };
                let mut r = BufReader::new(stream);
                let mut request_line = String::new();
                if r.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                    return;
                }
                let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                let (mut from, mut to, mut len) = (None, Vec::new(), 0usize);
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).await.unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    let v = v.trim().to_string();
                    match k.to_ascii_lowercase().as_str() {
                        "x-mail-from" => from = Some(v),
                        "x-mail-to" => to.push(v),
                        "content-length" => len = v.parse().unwrap(),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                p.lock().unwrap().push(Posted {
                    path,
                    from,
                    to,
                    body,
                });
                let resp = format!(
                    "HTTP/1.1 {} X\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                    answer.status,
                    answer.headers,
                    answer.body.len(),
                    answer.body
                );
                let _ = r.get_mut().write_all(resp.as_bytes()).await;
                let _ = r.get_mut().shutdown().await;
            });
        }
    });
    posted
}

// ---------- transport and LMTP client ----------

pub use chatmail_tests::support::free_port;

pub async fn start_transport(opts: mxdeliver::TransportOptions) -> (SocketAddr, CancellationToken) {
    start_transport_with("", opts).await
}

/// Starts the transport with extra `chatmail.ini` lines.
pub async fn start_transport_with(
    ini: &str,
    opts: mxdeliver::TransportOptions,
) -> (SocketAddr, CancellationToken) {
    let config =
        chatmaild::Config::parse(&format!("[params]\nmail_domain = relay.test\n{ini}")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        mxdeliver::run(Arc::new(config), listener, s, opts)
            .await
            .unwrap();
    });
    (addr, stop)
}

pub fn options(
    dns: SocketAddr,
    ca: &Ca,
    smtp_port: u16,
    https_port: u16,
) -> mxdeliver::TransportOptions {
    mxdeliver::TransportOptions {
        dns_server: Some(dns),
        dns_timeout: Duration::from_secs(2),
        system_roots: false,
        extra_roots: vec![ca.root()],
        smtp_port,
        https_port,
        ..Default::default()
    }
}

/// An LMTP client playing Postfix; replies are their last lines.
pub struct Lmtp {
    t: Transcript,
}

impl Lmtp {
    pub async fn connect(addr: SocketAddr) -> Lmtp {
        Lmtp {
            t: Transcript::connect(addr).await,
        }
    }

    /// Reads one (possibly multi-line) reply and returns its last line.
    pub async fn reply(&mut self) -> String {
        self.t.last_reply().await
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.t.stream()
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.t.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// One transaction of [`MESSAGE`] from `a@relay.test` on a new connection to `addr`;
    /// returns the replies after the final dot.
    pub async fn deliver(addr: SocketAddr, rcpts: &[&str]) -> Vec<String> {
        Lmtp::connect(addr)
            .await
            .send("a@relay.test", rcpts, MESSAGE)
            .await
    }

    /// A whole transaction; returns the replies after the final dot (one per accepted RCPT).
    pub async fn send(&mut self, from: &str, rcpts: &[&str], body: &[u8]) -> Vec<String> {
        assert!(self.cmd("LHLO relay.test").await.starts_with("250"));
        assert_eq!(self.cmd(&format!("MAIL FROM:<{from}>")).await, "250 OK");
        let mut accepted = 0;
        for r in rcpts {
            if self.cmd(&format!("RCPT TO:<{r}>")).await.starts_with("250") {
                accepted += 1;
            }
        }
        let go = self.cmd("DATA").await;
        if !go.starts_with("354") {
            return vec![go];
        }
        // One write, as Postfix does; two small writes would meet Nagle and delayed ACKs.
        let mut data = body.to_vec();
        data.extend_from_slice(b".\r\n");
        self.t.send(&data).await;
        let mut out = Vec::new();
        for _ in 0..accepted {
            out.push(self.reply().await);
        }
        out
    }
}

pub const MESSAGE: &[u8] =
    b"From: a@relay.test\r\nTo: b@a.test\r\nSubject: hi\r\n\r\n..leading dot\r\nbody\r\n";
