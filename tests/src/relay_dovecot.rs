//! A real Dovecot configured from the relay's own templates (`relay/dovecot/` for 2.3,
//! `relay/dovecot-2.4/` for 2.4), with Lua auth and the workspace's services behind it:
//! doveauth's HTTP `/create`, lastlogin, chatmail-metadata (pushes to a local mock) and the
//! quota-warning script. Dovecot 2.3 is this machine's; 2.4 is Debian 13's, run in the root
//! `scripts/debian13` keeps (built on first use). The services run here either way: the
//! chroot shares the loopback network, and its bind mounts put this test's directory at the
//! same path inside.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chatmaild::daemons;

use crate::dovecot::{free_port, vmail_ids};
use crate::dovecot_conf::{Auth, Instance};
use crate::service::binary;
use crate::support::wait_until;
// A started service process, killed on drop.
use crate::support::KillOnDrop as Daemon;

pub use crate::dovecot_conf::{Series, repo};

/// A local stand-in for the notification service: records every POST body.
pub struct NotifyMock {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bodies: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl NotifyMock {
    fn start() -> NotifyMock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let b = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let b = Arc::clone(&b);
                std::thread::spawn(move || serve_notify(stream, &b));
            }
        });
        NotifyMock { port, bodies }
    }

    /// Waits until `body` was posted; false after `timeout`.
    pub fn wait_for(&self, body: &str, timeout: Duration) -> bool {
        let (lock, cond) = &*self.bodies;
        let deadline = Instant::now() + timeout;
        let mut got = lock.lock().unwrap();
        while !got.iter().any(|b| b == body) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            got = cond.wait_timeout(got, left).unwrap().0;
        }
        true
    }
}

fn serve_notify(stream: TcpStream, bodies: &(Mutex<Vec<String>>, Condvar)) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(body) = crate::support::read_http_request(&mut reader) {
        let (lock, cond) = bodies;
        lock.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).into_owned());
        cond.notify_all();
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Dovecot from the relay templates and the services behind it.
pub struct RelayDovecot {
    /// Which Dovecot.
    pub series: Series,
    child: Option<Child>,
    /// Everything lives here.
    pub dir: tempfile::TempDir,
    /// The rendered dovecot.conf.
    pub conf: PathBuf,
    /// IMAP (plaintext, loopback is trusted) on 127.0.0.1.
    pub imap_port: u16,
    /// LMTP on 127.0.0.1.
    pub lmtp_port: u16,
    /// doveauth's HTTP port.
    pub http_port: u16,
    /// `mailboxes_dir`.
    pub mailboxes: PathBuf,
    /// The notification mock chatmail-metadata posts to.
    pub notify: NotifyMock,
    services: Vec<(&'static str, Daemon)>,
    instance: Instance,
}

/// The mail domain of these tests.
pub const DOMAIN: &str = "chat.example.org";
/// `max_mailbox_size` in MB: small enough to fill in a test.
pub const QUOTA_MB: u64 = 2;

impl RelayDovecot {
    /// Starts everything; `extra_ini` lines go into chatmail.ini.
    pub fn start(series: Series, extra_ini: &str) -> RelayDovecot {
        RelayDovecot::start_with_cache_ttl(series, extra_ini, "0")
    }

    /// Like [`RelayDovecot::start`] with another auth cache TTL (the relay's default is 60s).
    pub fn start_with_cache_ttl(series: Series, extra_ini: &str, ttl: &str) -> RelayDovecot {
        RelayDovecot::start_with(series, extra_ini, ttl, "")
    }

    /// Like [`RelayDovecot::start_with_cache_ttl`] with `lua_tail` appended to auth.lua.
    pub fn start_with(series: Series, extra_ini: &str, ttl: &str, lua_tail: &str) -> RelayDovecot {
        let (uid, gid) = vmail_ids();
        let dir = tempfile::Builder::new()
            .prefix("rd")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut instance = Instance::new(series, &root, Auth::Lua, (uid, gid));
        instance.cache_ttl = ttl.into();
        instance.lua_tail = lua_tail.into();
        let mailboxes = root.join("mail");
        std::fs::create_dir(&mailboxes).unwrap();
        std::os::unix::fs::chown(&mailboxes, Some(uid), Some(gid)).unwrap();
        let notify = NotifyMock::start();
        let http_port = free_port();
        let ini = instance.ini();
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\npassdb_path = {}\nmax_load_1m = 1000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\ndoveauth_http_port = {http_port}\nmax_mailbox_size = {QUOTA_MB}M\nnotification_url = http://127.0.0.1:{}/notify\n{extra_ini}",
                mailboxes.display(),
                root.join("passdb.sqlite").display(),
                notify.port,
            ),
        )
        .unwrap();
        let lastlogin_socket = instance.socket(&daemons::LASTLOGIN);
        let metadata_socket = instance.socket(&daemons::METADATA);
        let services = vec![
            (
                "doveauth",
                spawn_as(
                    &binary("doveauth", "doveauth"),
                    &[ini.as_os_str()],
                    &root.join("doveauth.log"),
                    (uid, gid),
                ),
            ),
            (
                "lastlogin",
                spawn_as(
                    &binary("lastlogin", "lastlogin"),
                    &[lastlogin_socket.as_os_str(), ini.as_os_str()],
                    &root.join("lastlogin.log"),
                    (uid, gid),
                ),
            ),
            (
                "metadata",
                spawn_as(
                    &binary("chatmail-metadata", "chatmail-metadata"),
                    &[metadata_socket.as_os_str(), ini.as_os_str()],
                    &root.join("metadata.log"),
                    (uid, gid),
                ),
            ),
        ];
        wait_until("doveauth HTTP", || {
            TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        wait_until("lastlogin socket", || lastlogin_socket.exists());
        wait_until("metadata socket", || metadata_socket.exists());
        for s in [&lastlogin_socket, &metadata_socket] {
            std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o666)).unwrap();
        }

        let child = instance.start();
        RelayDovecot {
            series,
            child: Some(child),
            conf: instance.conf(),
            imap_port: instance.imap_port,
            lmtp_port: instance.lmtp_port,
            http_port,
            mailboxes,
            notify,
            services,
            instance,
            dir,
        }
    }

    /// `doveadm -c <conf> ARGS` under this series: (success, stdout).
    pub fn doveadm(&self, args: &[&str]) -> (bool, String) {
        self.instance.doveadm(args)
    }

    /// Stops service `name` (`doveauth`, `lastlogin`, `metadata`).
    pub fn stop_service(&mut self, name: &str) {
        self.services.retain(|(n, _)| *n != name);
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        self.instance.log()
    }

    /// The `chatmail.ini` of this relay.
    pub fn ini(&self) -> PathBuf {
        self.instance.ini()
    }

    /// A service's stderr so far (`doveauth`, `lastlogin`, `metadata`).
    pub fn service_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Delivers `message` (CRLF lines) from `from` to `to` over LMTP; returns the reply to
    /// the end of data.
    pub fn lmtp_deliver(&self, from: &str, to: &str, message: &[u8]) -> String {
        let s = TcpStream::connect(("127.0.0.1", self.lmtp_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut line = String::new();
        let mut read_reply = |r: &mut BufReader<TcpStream>| -> String {
            let mut all = String::new();
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                all.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return all;
                }
            }
        };
        assert!(read_reply(&mut r).starts_with("220"));
        for cmd in [
            "LHLO test".to_owned(),
            format!("MAIL FROM:<{from}>"),
            format!("RCPT TO:<{to}>"),
            "DATA".to_owned(),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
            let reply = read_reply(&mut r);
            assert!(
                reply.starts_with('2') || reply.starts_with('3'),
                "{cmd}: {reply}; log:\n{}",
                self.log()
            );
        }
        w.write_all(message).unwrap();
        w.write_all(b"\r\n.\r\n").unwrap();
        let reply = read_reply(&mut r);
        w.write_all(b"QUIT\r\n").unwrap();
        reply
    }
}

fn spawn_as(bin: &Path, args: &[&std::ffi::OsStr], log: &Path, (uid, gid): (u32, u32)) -> Daemon {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(bin)
        .args(args)
        .env_remove("LISTEN_FDS")
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn service");
    Daemon(child)
}

impl Drop for RelayDovecot {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::support::terminate(child, Duration::from_secs(10));
        }
        self.services.clear();
    }
}
