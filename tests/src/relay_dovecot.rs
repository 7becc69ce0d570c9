//! A real Dovecot configured from the relay's own templates (`relay/dovecot/` for 2.3,
//! `relay/dovecot-2.4/` for 2.4), with Lua auth and the workspace's services behind it:
//! doveauth's HTTP `/create`, lastlogin, chatmail-metadata (pushes to a local mock) and the
//! quota-warning script. Dovecot 2.3 is this machine's; 2.4 is Debian 13's, run in the root
//! `scripts/debian13` keeps (built on first use). The services run here either way: the
//! chroot shares the loopback network, and its bind mounts put this test's directory at the
//! same path inside.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::dovecot::{free_port, vmail_ids};
use crate::service::binary;
// A started service process, killed on drop.
use crate::support::KillOnDrop as Daemon;

/// Which Dovecot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// This machine's (Debian 12: 2.3.19; Debian 13: 2.4).
    Host,
    /// Debian 13's 2.4, inside the `scripts/debian13` root.
    Debian13,
}

impl Series {
    /// Whether this Dovecot speaks 2.4's configuration language.
    pub fn is_24(self) -> bool {
        match self {
            Series::Host => !crate::dovecot::host_dovecot_is_23(),
            Series::Debian13 => true,
        }
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the Debian 13 root once per test process.
fn ensure_debian13() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new(repo().join("scripts/debian13"))
            .arg("ensure")
            .status()
            .expect("run scripts/debian13");
        assert!(status.success(), "scripts/debian13 ensure failed");
    });
}

/// A command run under `series` (inside the Debian 13 root, with `root` bind-mounted).
fn command(series: Series, root: &Path, program: &str) -> Command {
    match series {
        Series::Host => Command::new(program),
        Series::Debian13 => {
            let mut c = Command::new(repo().join("scripts/debian13"));
            c.env("CHATMAIL_DEBIAN13_BIND", root).args(["run", program]);
            c
        }
    }
}

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

/// Replaces every `@NAME@` of `template` (an unknown name is a test failure), as
/// scripts/relay renders.
pub fn render(template: &str, values: &HashMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        if name_len > 0
            && after.as_bytes().get(name_len) == Some(&b'@')
            && after.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        {
            let name = &after[..name_len];
            let value = values
                .get(name)
                .unwrap_or_else(|| panic!("no value for placeholder @{name}@"));
            out.push_str(&rest[..start]);
            out.push_str(value);
            rest = &after[name_len + 1..];
        } else {
            out.push_str(&rest[..=start]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
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
        if series == Series::Debian13 {
            ensure_debian13();
        }
        let (uid, gid) = vmail_ids();
        let dir = tempfile::Builder::new()
            .prefix("rd")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mailboxes = root.join("mail");
        let svc = root.join("svc");
        for d in [&mailboxes, &svc] {
            std::fs::create_dir(d).unwrap();
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        }
        let conf_dir = root.join("conf");
        let bin = root.join("bin");
        for d in [
            &conf_dir,
            &bin,
            &root.join("spool/private"),
            &root.join("state"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        // The quota-warning script must be reachable from inside the Debian 13 root too.
        let quota_expire = bin.join("chatmail-quota-expire");
        std::fs::copy(
            binary("chatmail-expire", "chatmail-quota-expire"),
            &quota_expire,
        )
        .unwrap();

        let notify = NotifyMock::start();
        let http_port = free_port();
        let ini = root.join("chatmail.ini");
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
        let lastlogin_socket = svc.join("lastlogin.socket");
        let metadata_socket = svc.join("metadata.socket");
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

        let imap_port = free_port();
        let lmtp_port = free_port();
        let conf = conf_dir.join("dovecot.conf");
        let (templates, password_var, http_settings, overrides, address) = match series.is_24() {
            false => (
                "relay/dovecot",
                "%w",
                "request_timeout_msecs = 5000, max_attempts = 1",
                "disable_plaintext_auth = no\n",
                "address",
            ),
            true => (
                "relay/dovecot-2.4",
                "%{password}",
                "request_timeout = \"5s\", request_max_attempts = 1",
                "ssl = yes\nauth_allow_cleartext = yes\n",
                "listen",
            ),
        };
        let s = |v: &Path| v.display().to_string();
        let values: HashMap<&str, String> = [
            ("DOVECOT_INSTANCE", format!("rd{imap_port}")),
            ("DOVECOT_BASE_DIR", s(&root.join("run"))),
            ("DOVECOT_STATE_DIR", s(&root.join("state"))),
            ("DOVECOT_LOG_FILE", s(&root.join("dovecot.log"))),
            ("DOVECOT_LISTEN", "127.0.0.1".into()),
            ("DOVECOT_CONF_DIR", s(&conf_dir)),
            ("DOVECOT_CLIENT_LIMIT", "1000".into()),
            ("MAX_IMAP_CONNECTIONS", "100".into()),
            ("IMAP_LOGIN_MIN_AVAIL", "1".into()),
            ("IMAP_EXTRA_PLUGINS", String::new()),
            ("MAILBOXES_DIR", s(&mailboxes)),
            ("MAIL_DOMAIN", DOMAIN.into()),
            ("MAX_MAILBOX_SIZE_MB", QUOTA_MB.to_string()),
            ("QUOTA_TARGET_MB", (QUOTA_MB * 70 / 100).to_string()),
            ("MAX_MESSAGE_SIZE", "31457280".into()),
            ("BIN_DIR", s(&bin)),
            ("METADATA_SOCKET", s(&metadata_socket)),
            ("LASTLOGIN_SOCKET", s(&lastlogin_socket)),
            ("POSTFIX_QUEUE_DIR", s(&root.join("spool"))),
            ("TLS_CERT", s(&root.join("cert.pem"))),
            ("TLS_KEY", s(&root.join("key.pem"))),
            ("DOVEAUTH_HTTP_PORT", http_port.to_string()),
            ("AUTH_CACHE_TTL", ttl.into()),
            (
                "AUTH_CACHE_SIZE",
                if ttl == "0" { "0" } else { "10M" }.into(),
            ),
            ("PASSWORD_VARIABLE", password_var.into()),
            ("HTTP_CLIENT_SETTINGS", http_settings.into()),
        ]
        .into_iter()
        .collect();
        let repo = repo();
        let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();
        let main = render(&read(&format!("{templates}/dovecot.conf.in")), &values);
        std::fs::write(
            &conf,
            format!(
                "{main}\n# --- test overrides: own ports, plaintext logins from loopback, no delays\n{overrides}login_trusted_networks = 127.0.0.0/8\nauth_failure_delay = 0\nservice imap-login {{\n  inet_listener imap {{\n    {address} = 127.0.0.1\n    port = {imap_port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\nservice lmtp {{\n  inet_listener lmtp {{\n    {address} = 127.0.0.1\n    port = {lmtp_port}\n  }}\n}}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            conf_dir.join("auth-backend.conf"),
            render(&read(&format!("{templates}/auth-lua.conf.in")), &values),
        )
        .unwrap();
        std::fs::write(
            conf_dir.join("auth.lua"),
            render(&read("relay/dovecot/auth.lua.in"), &values),
        )
        .unwrap();
        std::fs::write(
            conf_dir.join("push_notification.lua"),
            read("relay/dovecot/push_notification.lua"),
        )
        .unwrap();
        let cert = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ])
            .arg(root.join("key.pem"))
            .arg("-out")
            .arg(root.join("cert.pem"))
            .output()
            .expect("openssl");
        assert!(cert.status.success());

        let child = command(series, &root, "dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let d = RelayDovecot {
            series,
            child: Some(child),
            dir,
            conf,
            imap_port,
            lmtp_port,
            http_port,
            mailboxes,
            notify,
            services,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut d = d;
        while TcpStream::connect(("127.0.0.1", imap_port)).is_err()
            || TcpStream::connect(("127.0.0.1", lmtp_port)).is_err()
        {
            let exited = d
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            assert!(
                Instant::now() < deadline && !exited,
                "dovecot did not listen ({series:?}); log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// `doveadm -c <conf> ARGS` under this series: (success, stdout).
    pub fn doveadm(&self, args: &[&str]) -> (bool, String) {
        let out = command(self.series, self.dir.path(), "doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .expect("run doveadm");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Stops service `name` (`doveauth`, `lastlogin`, `metadata`).
    pub fn stop_service(&mut self, name: &str) {
        self.services.retain(|(n, _)| *n != name);
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
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

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(20));
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
