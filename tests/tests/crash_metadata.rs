//! chatmail-metadata killed with SIGKILL at arbitrary points while clients set device tokens
//! and Dovecot-style `messagenew` events queue notifications, restarted, in a loop: no
//! acknowledged token is lost or torn, and after every acknowledged `messagenew` the device
//! gets a push from the (local mock) notification service, after the restart at the latest.
//! A push only says "there is new mail", so several messages may share one.
//!
//! `CRASH_ITERATIONS` (default 20) sets the number of kill/restart rounds; a longer manual
//! run is `CRASH_ITERATIONS=200 cargo test --release -p chatmail-tests --test crash_metadata`
//! (build the binary first: `cargo build --release -p chatmail-metadata`).
#![expect(clippy::unwrap_used, reason = "test code: failing loudly is the point")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatmail_tests::service::binary;
use chatmail_tests::support::{
    KillOnDrop, Scratch, crash_iterations, read_lossy, spawn_with_socket,
};
use chatmail_tests::support::{kill_mid_round, xorshift};

const DOMAIN: &str = "crash.example.org";
const CLIENTS: usize = 6;
/// Accounts whose one token never changes: the targets of `messagenew`.
const PUSH_USERS: usize = 6;

/// How the mock notification service treats requests.
const DOWN: u8 = 0; // read the request, close without an answer (the sender retries in 8 s)
const SLOW: u8 = 1; // 200 after 20 ms
const FAST: u8 = 2; // 200 at once

/// When the mock service answered 200, per token.
type Deliveries = BTreeMap<String, Vec<Instant>>;

/// A local HTTP/1.1 notification service recording the tokens it answered 200 for.
struct PushServer {
    url: String,
    mode: Arc<AtomicU8>,
    delivered: Arc<Mutex<Deliveries>>,
}

impl PushServer {
    fn start() -> PushServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(DOWN));
        let delivered: Arc<Mutex<Deliveries>> = Arc::default();
        let (m, d) = (mode.clone(), delivered.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (m, d) = (m.clone(), d.clone());
                std::thread::spawn(move || serve(stream, &m, &d));
            }
        });
        PushServer {
            url,
            mode,
            delivered,
        }
    }
}

/// Requests of one keep-alive connection: the body is the token.
fn serve(stream: std::net::TcpStream, mode: &AtomicU8, delivered: &Mutex<Deliveries>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(body) = chatmail_tests::support::read_http_request(&mut reader) {
        match mode.load(Ordering::SeqCst) {
            DOWN => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            SLOW => std::thread::sleep(Duration::from_millis(20)),
            _ => {}
        }
        // Recorded before the answer leaves: a kill after this line is a delivery the
        // daemon may repeat (at least once), never one it may skip.
        let token = String::from_utf8(body).unwrap();
        delivered
            .lock()
            .unwrap()
            .entry(token)
            .or_default()
            .push(Instant::now());
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

struct Env {
    _scratch: Scratch,
    bin: PathBuf,
    socket: PathBuf,
    ini: PathBuf,
    mailboxes: PathBuf,
    log: PathBuf,
}

impl Env {
    fn new(url: &str) -> Env {
        let scratch = Scratch::new("crashmeta", DOMAIN, |root| {
            format!(
                "notification_url = {url}\nturn_socket_path = {}\n",
                root.join("turn.socket").display()
            )
        });
        Env {
            bin: binary("chatmail-metadata", "chatmail-metadata"),
            socket: scratch.path("metadata.socket"),
            log: scratch.path("metadata.log"),
            ini: scratch.ini.clone(),
            mailboxes: scratch.mailboxes.clone(),
            _scratch: scratch,
        }
    }

    fn queue_dir(&self) -> PathBuf {
        self.mailboxes.join("pending_notifications")
    }

    /// Starts the daemon (appending to one log across restarts) and waits for its socket.
    fn spawn(&self) -> Child {
        let _ = std::fs::remove_file(&self.socket);
        let mut command = Command::new(&self.bin);
        command
            .arg(&self.socket)
            .arg(&self.ini)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS");
        spawn_with_socket(&mut command, &self.socket, &self.log)
    }

    fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    /// The queue items on disk per address (how many, the latest message time); panics on
    /// a torn or foreign item.
    fn queued(&self) -> BTreeMap<String, (usize, i64)> {
        let mut per_user = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.queue_dir()) else {
            return per_user;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.ends_with(".tmp") {
                continue; // a kill during the write; removed at the next start
            }
            let text = match std::fs::read_to_string(entry.path()) {
                Ok(text) => text,
                // Delivered and deleted by the running daemon since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("queue item {name}: {e}"),
            };
            let mut lines = text.split('\n');
            let (Some(addr), Some(ts), Some(token), None) =
                (lines.next(), lines.next(), lines.next(), lines.next())
            else {
                panic!("torn queue item {name}: {text:?}");
            };
            let ts: i64 = ts
                .parse()
                .unwrap_or_else(|_| panic!("queue item {name}: {text:?}"));
            assert_eq!(token, push_token(addr), "queue item {name}: {text:?}");
            let (n, latest) = per_user.entry(addr.to_owned()).or_insert((0, ts));
            *n += 1;
            *latest = (*latest).max(ts);
        }
        per_user
    }
}

fn push_user(i: usize) -> String {
    format!("push{i}@{DOMAIN}")
}

fn push_token(addr: &str) -> String {
    format!("pushtoken-{}", addr.split('@').next().unwrap())
}

/// One transaction on a fresh connection: `Some(true)` only for the commit's `O`, `None`
/// when the daemon is gone (no connection).
fn commit(socket: &Path, user: &str, key: &str, value: Option<&str>) -> Option<bool> {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return None;
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let set = match value {
        Some(v) => format!("S1\t{key}\t{v}\n"),
        None => format!("S1\t{key}\n"),
    };
    let req = format!("H3\t2\t0\t\tmetadata\nB1\t{user}\n{set}C1\n");
    if s.write_all(req.as_bytes()).is_err() || s.shutdown(Shutdown::Write).is_err() {
        return Some(false);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some(out == b"O\n")
}

/// The dict lookup of a user's tokens.
fn lookup_tokens(socket: &Path, user: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(format!("Lpriv/0123/devicetoken\t{user}\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// The tokens of a `metadata.json` in file order; panics unless it is exactly the
/// reference's format (`{"devicetoken": {"<token>": <int>, ...}}`).
fn file_tokens(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let inner = text
        .strip_prefix(r#"{"devicetoken": {"#)
        .and_then(|r| r.strip_suffix("}}"))
        .unwrap_or_else(|| panic!("torn or foreign metadata.json: {text:?}"));
    inner
        .split(", ")
        .map(|pair| {
            let (token, ts) = pair
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad entry {pair:?} in {text:?}"));
            assert!(ts.parse::<i64>().is_ok(), "bad timestamp in {text:?}");
            token.trim_matches('"').to_owned()
        })
        .collect()
}

fn iterations() -> u64 {
    crash_iterations(20)
}

#[test]
fn kill_9_loses_no_acknowledged_token_or_notification() {
    let push = PushServer::start();
    let env = Env::new(&push.url);
    // The push users' tokens, set once before any kill.
    {
        let child = KillOnDrop(env.spawn());
        for i in 0..PUSH_USERS {
            let u = push_user(i);
            assert_eq!(
                commit(
                    &env.socket,
                    &u,
                    "priv/guid/devicetoken",
                    Some(&push_token(&u))
                ),
                Some(true)
            );
        }
        drop(child);
    }
    // Token users get two tokens and a refresh of the first: acknowledged ones must stay.
    let acked_tokens: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let sent_tokens: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let acked_new: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let sent_new: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    // When the latest acknowledged messagenew of each push user was sent.
    let last_acked: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut killed_mid_burst = 0;
    let mut down_rounds = 0;
    let rounds = iterations();
    for round in 0..rounds {
        // The last round runs against a service that answers nothing, so everything it
        // acknowledged is still queued at the final kill.
        let mode = if round % 2 == 1 || round + 1 == rounds {
            DOWN
        } else {
            SLOW
        };
        push.mode.store(mode, Ordering::SeqCst);
        let mut child = env.spawn();
        let stop = Arc::new(AtomicBool::new(false));
        let round_acks = Arc::new(AtomicUsize::new(0));
        // Per push user: the Unix second before its latest acknowledged messagenew was sent.
        let round_new: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let socket = env.socket.clone();
            let (stop, round_acks, round_new) =
                (stop.clone(), round_acks.clone(), round_new.clone());
            let (acked_tokens, sent_tokens) = (acked_tokens.clone(), sent_tokens.clone());
            let (acked_new, sent_new) = (acked_new.clone(), sent_new.clone());
            let last_acked = last_acked.clone();
            clients.push(std::thread::spawn(move || {
                for n in 0..200 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // A messagenew for a push user.
                    let p = push_user((client + n) % PUSH_USERS);
                    *sent_new.lock().unwrap().entry(p.clone()).or_default() += 1;
                    let (sent_at, sent_unix) =
                        (Instant::now(), chatmaild::wall_time::unix_seconds());
                    match commit(&socket, &p, "priv/guid/messagenew", None) {
                        None => break,
                        Some(false) => {}
                        Some(true) => {
                            *acked_new.lock().unwrap().entry(p.clone()).or_default() += 1;
                            let mut last = last_acked.lock().unwrap();
                            let at = last.entry(p.clone()).or_insert(sent_at);
                            *at = (*at).max(sent_at);
                            let mut round = round_new.lock().unwrap();
                            let ts = round.entry(p).or_insert(sent_unix);
                            *ts = (*ts).max(sent_unix);
                            round_acks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // A token set: tokens a, b, then a again for the same fresh user.
                    let user = format!("r{round:03}c{client}u{}@{DOMAIN}", n / 3);
                    let token =
                        format!("tok-{round}-{client}-{}-{}", n / 3, ["a", "b", "a"][n % 3]);
                    sent_tokens
                        .lock()
                        .unwrap()
                        .entry(user.clone())
                        .or_default()
                        .push(token.clone());
                    match commit(&socket, &user, "priv/guid/devicetoken", Some(&token)) {
                        None => break,
                        Some(false) => {}
                        Some(true) => {
                            acked_tokens
                                .lock()
                                .unwrap()
                                .entry(user)
                                .or_default()
                                .push(token);
                            round_acks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        // Kill once 10..60 operations of this round were acknowledged, then a little later.
        xorshift(&mut seed);
        let target = 10 + usize::try_from(seed % 50).unwrap();
        let reached = || round_acks.load(Ordering::SeqCst) >= target;
        let jitter = Duration::from_millis(seed % 15);
        if kill_mid_round(&mut child, clients, &stop, reached, jitter) {
            killed_mid_burst += 1;
        }
        // With nothing answered, the latest acknowledged messagenew of every push user of
        // the round is on disk: a queue file of at least its time (nothing could be
        // delivered meanwhile). Its device has one waiting file and at most two in flight.
        if mode == DOWN {
            down_rounds += 1;
            let after = env.queued();
            for (user, sent) in round_new.lock().unwrap().iter() {
                let (n, latest) = after.get(user).copied().unwrap_or((0, i64::MIN));
                assert!(
                    latest >= *sent,
                    "round {round}: {user}'s messagenew of {sent} acknowledged, latest queued {latest}"
                );
                assert!(n <= 3, "round {round}: {user} has {n} queue files");
            }
        }
    }
    assert!(killed_mid_burst > 0, "no kill hit a running burst");
    assert!(down_rounds > 0);
    let queued_at_end: usize = env.queued().values().map(|(n, _)| n).sum();

    // Restart against a working service: the queue drains and every push user got a push
    // after its latest acknowledged messagenew.
    push.mode.store(FAST, Ordering::SeqCst);
    let _child = KillOnDrop(env.spawn());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.queued().is_empty() {
        assert!(
            Instant::now() < deadline,
            "queue not drained: {:?}",
            env.queued()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let delivered = push.delivered.lock().unwrap().clone();
    let (acked_new, sent_new) = (acked_new.lock().unwrap(), sent_new.lock().unwrap());
    for (u, acked_at) in last_acked.lock().unwrap().iter() {
        let pushes = delivered.get(&push_token(u)).map(Vec::as_slice);
        assert!(
            pushes.unwrap_or_default().iter().any(|at| at >= acked_at),
            "{u}: no push after its latest acknowledged messagenew"
        );
    }
    let pushes: usize = delivered.values().map(Vec::len).sum();

    // Tokens: every file is whole and in the reference's format, holds only tokens that
    // were sent, every acknowledged one, and is served exactly as stored.
    let (acked_tokens, sent_tokens) = (acked_tokens.lock().unwrap(), sent_tokens.lock().unwrap());
    let mut files = 0;
    let mut tmp_leftovers = 0;
    for (user, sent) in sent_tokens.iter() {
        let dir = env.mailboxes.join(user);
        let path = dir.join("metadata.json");
        let stored = if path.exists() {
            files += 1;
            file_tokens(&path)
        } else {
            Vec::new()
        };
        for t in &stored {
            assert!(sent.contains(t), "{user}: token {t} was never sent");
        }
        for t in acked_tokens.get(user).into_iter().flatten() {
            assert!(
                stored.contains(t),
                "{user}: acknowledged token {t} lost: {stored:?}"
            );
        }
        let mut unique = stored.clone();
        unique.dedup();
        assert_eq!(unique, stored, "{user}: a token twice");
        assert_eq!(
            lookup_tokens(&env.socket, user),
            format!("O{}\n", stored.join(" ")),
            "{user}: served differently from the file"
        );
        if dir.exists() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".tmp") {
                    assert!(name.starts_with("metadata.json."), "{user}: stray {name}");
                    tmp_leftovers += 1;
                } else {
                    assert!(
                        matches!(name.as_str(), "metadata.json" | "metadata.json.lock"),
                        "{user}: stray file {name}"
                    );
                }
            }
        }
    }
    for i in 0..PUSH_USERS {
        let u = push_user(i);
        assert_eq!(
            lookup_tokens(&env.socket, &u),
            format!("O{}\n", push_token(&u))
        );
    }
    let acked_total: usize = acked_new.values().sum();
    let sent_total: usize = sent_new.values().sum();
    let tokens_acked: usize = acked_tokens.values().map(Vec::len).sum();
    eprintln!(
        "{rounds} kill rounds ({down_rounds} with the service down), {killed_mid_burst} mid-burst; \
         messagenew: {sent_total} sent, {acked_total} acknowledged, {queued_at_end} queued at the last kill, \
         {pushes} pushes delivered; \
         tokens: {tokens_acked} acknowledged sets, {files} metadata.json files, {tmp_leftovers} .tmp leftovers"
    );
    let log = env.log_text();
    assert!(!log.contains("panicked"), "panic in log:\n{log}");
}
