//! Test support (feature `testing`): the scripted fake SMTP server and the transcript client
//! that the tests and benches of the relay share. Real servers on loopback, never mocks of
//! the code under test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// How long the transcript client waits for a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the fake server answers. Replies are written as given, without CRLF.
#[derive(Clone)]
pub struct Script {
    /// The name in the greeting (`220 <name> ESMTP`) and the EHLO reply's first line.
    pub name: &'static str,
    /// The EHLO extensions (`STARTTLS` is added before the last one when `tls` is set).
    pub extensions: Vec<&'static str>,
    /// Reply to MAIL.
    pub mail: &'static str,
    /// Reply to RCPT.
    pub rcpt: &'static str,
    /// Recipients starting with this prefix get the second text instead.
    pub refuse_rcpt: Option<(&'static str, &'static str)>,
    /// Reply to DATA.
    pub data: &'static str,
    /// Reply after the final dot.
    pub end_of_data: String,
    /// Reply to RSET.
    pub rset: &'static str,
    /// Reply to anything else.
    pub other: &'static str,
    /// Close each connection right after answering a message, as a server whose idle
    /// timeout expired would.
    pub hang_up: bool,
    /// Offer STARTTLS with this configuration.
    pub tls: Option<Arc<ServerConfig>>,
    /// Keep what was received (a load sink does not).
    pub record: bool,
}

impl Script {
    /// A load sink standing in for Postfix's reinjection port: accepts everything, keeps
    /// nothing.
    pub fn load_sink() -> Script {
        Script {
            extensions: vec!["8BITMIME", "SMTPUTF8"],
            mail: "250 Ok",
            rcpt: "250 Ok",
            end_of_data: "250 2.0.0 Ok: queued".to_owned(),
            record: false,
            ..Script::reinjection("")
        }
    }

    /// Postfix's reinjection port as filtermail meets it, answering `end_of_data`.
    pub fn reinjection(end_of_data: &str) -> Script {
        Script {
            name: "sink",
            extensions: vec!["PIPELINING", "8BITMIME", "SMTPUTF8"],
            mail: "250 2.1.0 Ok",
            rcpt: "250 2.1.5 Ok",
            refuse_rcpt: None,
            data: "354 go ahead",
            end_of_data: end_of_data.to_owned(),
            rset: "250 Ok",
            other: "250 Ok",
            hang_up: false,
            tls: None,
            record: true,
        }
    }

    /// A remote MX host as the delivery transport meets it.
    pub fn mx() -> Script {
        Script {
            name: "fake.test",
            extensions: vec!["8BITMIME", "SIZE 1000000"],
            mail: "250 OK",
            rcpt: "250 OK",
            refuse_rcpt: None,
            data: "354 go",
            end_of_data: "250 2.0.0 queued".to_owned(),
            rset: "250 OK",
            other: "500 what",
            hang_up: false,
            tls: None,
            record: true,
        }
    }

    fn ehlo(&self, plain: bool) -> String {
        let mut ext = self.extensions.clone();
        if plain && self.tls.is_some() {
            ext.insert(ext.len().saturating_sub(1), "STARTTLS");
        }
        let mut out = format!("250-{}\r\n", self.name);
        for (i, e) in ext.iter().enumerate() {
            let sep = if i + 1 == ext.len() { ' ' } else { '-' };
            out.push_str(&format!("250{sep}{e}\r\n"));
        }
        out
    }
}

/// One transaction the fake server received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// The EHLO lines of the connection.
    pub helo: Vec<String>,
    /// Whether the transaction ran over TLS.
    pub tls: bool,
    /// The full `MAIL FROM:` line (parameters included).
    pub mail_line: String,
    /// The reverse path.
    pub from: String,
    /// The MAIL parameters after the path.
    pub mail_params: String,
    /// The RCPT addresses accepted.
    pub rcpts: Vec<String>,
    /// The message as sent, dot-stuffed, without the end line.
    pub wire: Vec<u8>,
    /// The message after undoing dot-stuffing.
    pub data: Vec<u8>,
}

/// A running fake server on 127.0.0.1.
#[derive(Clone)]
pub struct FakeServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its port.
    pub port: u16,
    /// Everything received so far.
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl FakeServer {
    /// Starts a server following `script` on a free port.
    #[expect(clippy::expect_used, reason = "test support")]
    pub async fn start(script: Script) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        FakeServer::serve(listener, script)
    }

    /// Serves `listener` following `script`.
    #[expect(clippy::expect_used, reason = "test support")]
    pub fn serve(listener: TcpListener, script: Script) -> FakeServer {
        let addr = listener.local_addr().expect("local address");
        let server = FakeServer {
            addr,
            port: addr.port(),
            received: Arc::default(),
            connections: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let (s, script) = (s.clone(), script.clone());
                tokio::spawn(async move { s.connection(stream, &script).await });
            }
        });
        server
    }

    async fn connection(&self, stream: TcpStream, script: &Script) {
        // Replies are whole lines written at once; never hold them back.
        let _ = stream.set_nodelay(true);
        let mut state = Received::default();
        let Some(stream) = self.dialogue(stream, script, true, &mut state).await else {
            return;
        };
        let Some(tls) = script.tls.clone() else {
            return;
        };
        let Ok(tls) = TlsAcceptor::from(tls).accept(stream).await else {
            return;
        };
        state.tls = true;
        self.dialogue(tls, script, false, &mut state).await;
    }

    /// The transactions received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs the dialogue; returns the stream when the client asked for STARTTLS.
    async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        script: &Script,
        plain: bool,
        st: &mut Received,
    ) -> Option<S> {
        let mut r = BufReader::new(stream);
        if plain {
            let greeting = format!("220 {} ESMTP\r\n", script.name);
            r.get_mut().write_all(greeting.as_bytes()).await.ok()?;
        }
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end().to_owned();
            let upper = line.to_ascii_uppercase();
            let reply = if upper.starts_with("EHLO") {
                st.helo.push(line.clone());
                script.ehlo(plain)
            } else if upper == "STARTTLS" && plain && script.tls.is_some() {
                r.get_mut().write_all(b"220 go ahead\r\n").await.ok()?;
                return Some(r.into_inner());
            } else if upper == "DATA" {
                let data = format!("{}\r\n", script.data);
                r.get_mut().write_all(data.as_bytes()).await.ok()?;
                self.message(&mut r, st, script.record).await?;
                let end = format!("{}\r\n", script.end_of_data);
                r.get_mut().write_all(end.as_bytes()).await.ok()?;
                if script.hang_up {
                    return None;
                }
                continue;
            } else if upper == "QUIT" {
                let _ = r.get_mut().write_all(b"221 bye\r\n").await;
                return None;
            } else {
                envelope(script, st, &line, &upper)
            };
            r.get_mut().write_all(reply.as_bytes()).await.ok()?;
        }
    }

    /// Reads a message up to its end line and records the transaction.
    async fn message<S: AsyncRead + Unpin>(
        &self,
        r: &mut BufReader<S>,
        st: &mut Received,
        record: bool,
    ) -> Option<()> {
        let (mut wire, mut data) = (Vec::new(), Vec::new());
        loop {
            let mut l = Vec::new();
            if r.read_until(b'\n', &mut l).await.ok()? == 0 {
                return None;
            }
            if l == b".\r\n" {
                break;
            }
            if !record {
                continue;
            }
            wire.extend_from_slice(&l);
            data.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
        }
        if !record {
            return Some(());
        }
        st.wire = wire;
        st.data = data;
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(st.clone());
        Some(())
    }
}

/// The reply to a command that needs no I/O beyond it (MAIL, RCPT, RSET, others).
fn envelope(script: &Script, st: &mut Received, line: &str, upper: &str) -> String {
    let reply = if upper.starts_with("MAIL FROM:") {
        let args = line.get(10..).unwrap_or_default();
        st.from = path(args);
        st.mail_params = args
            .split_once('>')
            .map(|(_, p)| p.trim().to_owned())
            .unwrap_or_default();
        st.mail_line = line.to_owned();
        st.rcpts.clear();
        script.mail
    } else if upper.starts_with("RCPT TO:") {
        let addr = path(line.get(8..).unwrap_or_default());
        match script.refuse_rcpt {
            Some((prefix, refusal)) if addr.starts_with(prefix) => refusal,
            _ => {
                st.rcpts.push(addr);
                script.rcpt
            }
        }
    } else if upper == "RSET" {
        script.rset
    } else {
        script.other
    };
    format!("{reply}\r\n")
}

/// The address between `<` and `>`.
fn path(s: &str) -> String {
    let s = s.trim_start().trim_start_matches('<');
    s.split_once('>').map_or(s, |(a, _)| a).to_owned()
}

/// A raw client for SMTP/LMTP transcripts; it panics on anything a test should not see.
#[derive(Debug)]
pub struct Transcript {
    r: BufReader<TcpStream>,
}

#[expect(clippy::expect_used, reason = "test support")]
impl Transcript {
    /// Connects to `addr` and reads the greeting, which must be a 220.
    pub async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Transcript {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut c = Transcript {
            r: BufReader::new(stream),
        };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }

    /// The connection, for raw writes and reads.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.r.get_mut()
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).await.expect("write");
    }

    /// One complete (possibly multi-line) reply: its lines without CRLF.
    pub async fn reply_lines(&mut self) -> Vec<String> {
        self.try_reply_lines()
            .await
            .expect("connection closed before a complete reply")
    }

    /// One complete reply, or `None` when the server closed (or reset) the connection
    /// before the reply was complete: what a hostile client expects to see.
    pub async fn try_reply_lines(&mut self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(REPLY_TIMEOUT, self.r.read_line(&mut line))
                .await
                .expect("reply timeout");
            match read {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading a reply: {e}"),
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_owned();
            let more = line.as_bytes().get(3) == Some(&b'-');
            out.push(line);
            if !more {
                return Some(out);
            }
        }
    }

    /// The last line of one complete reply, `None` if the connection closed first.
    pub async fn try_last_reply(&mut self) -> Option<String> {
        self.try_reply_lines().await?.pop()
    }

    /// One complete reply, lines joined with `\n`.
    pub async fn reply(&mut self) -> String {
        self.reply_lines().await.join("\n")
    }

    /// The last line of one complete reply.
    pub async fn last_reply(&mut self) -> String {
        self.reply_lines().await.pop().unwrap_or_default()
    }

    /// Sends a command line and returns the reply (lines joined with `\n`).
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Whether the server closed the connection (EOF within a bounded wait).
    pub async fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut line)).await,
            Ok(Ok(0))
        )
    }

    /// A whole SMTP transaction; returns the final reply. `message` is sent dot-stuffed.
    pub async fn transaction(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if !r.starts_with("250") {
            return r;
        }
        for t in to {
            let r = self.cmd(&format!("RCPT TO:<{t}>")).await;
            assert!(r.starts_with("250"), "{r}");
        }
        let r = self.cmd("DATA").await;
        assert!(r.starts_with("354"), "{r}");
        self.send(&crate::stuff(message)).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}
