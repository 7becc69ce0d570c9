//! A test Dovecot configured from the relay's own templates (`relay/dovecot/` for 2.3,
//! `relay/dovecot-2.4/` for 2.4) as scripts/relay renders them, so what the tests run is
//! what a relay deploys. Only a few test overrides are appended: own loopback ports,
//! plaintext logins from loopback, no failure delays.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::service::binary;

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

/// Dovecot's passdb/userdb, as scripts/relay's `CHATMAIL_RELAY_AUTH` chooses.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `auth-lua.conf.in`: auth.lua, unknown accounts offered to doveauth's HTTP `/create`.
    Lua {
        /// doveauth's HTTP port.
        http_port: u16,
        /// `auth_cache_ttl` (the relay's default is 0: no cache).
        cache_ttl: String,
        /// Lua appended to the rendered auth.lua (a test's variation of the script).
        script_tail: String,
    },
    /// `auth-dict.conf.in` (Dovecot 2.3 only): doveauth over the dict protocol.
    Dict {
        /// doveauth's dict socket.
        socket: PathBuf,
    },
}

/// What a test Dovecot's configuration points at; everything of Dovecot's own lives in
/// `root` (`conf/`, `run/`, `state/`, `spool/private/`, `bin/`, `dovecot.log`, the
/// certificate).
#[derive(Debug, Clone)]
pub struct Instance {
    /// Which Dovecot.
    pub series: Series,
    /// The private directory.
    pub root: PathBuf,
    /// passdb/userdb.
    pub auth: Auth,
    /// `mail_domain`.
    pub mail_domain: String,
    /// `mailboxes_dir`.
    pub mailboxes: PathBuf,
    /// `max_mailbox_size` in MB.
    pub max_mailbox_mb: u64,
    /// lastlogin's dict socket.
    pub lastlogin_socket: PathBuf,
    /// chatmail-metadata's dict socket.
    pub metadata_socket: PathBuf,
    /// The IMAP port on 127.0.0.1.
    pub imap_port: u16,
    /// The LMTP port on 127.0.0.1.
    pub lmtp_port: u16,
}

impl Instance {
    /// The rendered dovecot.conf.
    pub fn conf(&self) -> PathBuf {
        self.root.join("conf/dovecot.conf")
    }

    /// Renders the configuration into `root/conf` (with a fresh certificate and the
    /// quota-warning script in `root/bin`) and starts Dovecot; returns once it listens on
    /// both ports.
    pub fn start(&self) -> Child {
        if self.series == Series::Debian13 {
            ensure_debian13();
        }
        self.write_conf();
        let mut child = command(self.series, &self.root, "dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.conf())
            .stdin(Stdio::null())
            .spawn()
            .expect("start dovecot (is dovecot-imapd installed?)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.imap_port)).is_err()
            || TcpStream::connect(("127.0.0.1", self.lmtp_port)).is_err()
        {
            let exited = child.try_wait().ok().flatten().is_some();
            assert!(
                Instant::now() < deadline && !exited,
                "dovecot did not listen ({:?}); log:\n{}",
                self.series,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// `doveadm -c <conf> ARGS` under this series: (success, stdout).
    pub fn doveadm(&self, args: &[&str]) -> (bool, String) {
        let out = command(self.series, &self.root, "doveadm")
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .output()
            .expect("run doveadm");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dovecot.log")).unwrap_or_default()
    }

    /// The `T_*` values scripts/relay renders the templates with.
    fn values(&self) -> HashMap<&'static str, String> {
        let s = |v: &Path| v.display().to_string();
        let root = &self.root;
        let (password_var, http_settings) = if self.series.is_24() {
            (
                "%{password}",
                "request_timeout = \"5s\", request_max_attempts = 1",
            )
        } else {
            ("%w", "request_timeout_msecs = 5000, max_attempts = 1")
        };
        let mut values: HashMap<&str, String> = [
            ("DOVECOT_INSTANCE", format!("rd{}", self.imap_port)),
            ("DOVECOT_BASE_DIR", s(&root.join("run"))),
            ("DOVECOT_STATE_DIR", s(&root.join("state"))),
            ("DOVECOT_LOG_FILE", s(&root.join("dovecot.log"))),
            ("DOVECOT_LISTEN", "127.0.0.1".into()),
            ("DOVECOT_CONF_DIR", s(&root.join("conf"))),
            ("DOVECOT_CLIENT_LIMIT", "1000".into()),
            ("MAX_IMAP_CONNECTIONS", "100".into()),
            ("IMAP_LOGIN_MIN_AVAIL", "1".into()),
            ("IMAP_EXTRA_PLUGINS", String::new()),
            ("MAILBOXES_DIR", s(&self.mailboxes)),
            ("MAIL_DOMAIN", self.mail_domain.clone()),
            ("MAX_MAILBOX_SIZE_MB", self.max_mailbox_mb.to_string()),
            (
                "QUOTA_TARGET_MB",
                (self.max_mailbox_mb * 70 / 100).to_string(),
            ),
            ("MAX_MESSAGE_SIZE", "31457280".into()),
            ("BIN_DIR", s(&root.join("bin"))),
            ("METADATA_SOCKET", s(&self.metadata_socket)),
            ("LASTLOGIN_SOCKET", s(&self.lastlogin_socket)),
            ("POSTFIX_QUEUE_DIR", s(&root.join("spool"))),
            ("TLS_CERT", s(&root.join("cert.pem"))),
            ("TLS_KEY", s(&root.join("key.pem"))),
            ("PASSWORD_VARIABLE", password_var.into()),
            ("HTTP_CLIENT_SETTINGS", http_settings.into()),
        ]
        .into_iter()
        .collect();
        match &self.auth {
            Auth::Lua {
                http_port,
                cache_ttl,
                ..
            } => {
                values.insert("DOVEAUTH_HTTP_PORT", http_port.to_string());
                values.insert("AUTH_CACHE_TTL", cache_ttl.clone());
                let size = if cache_ttl == "0" { "0" } else { "10M" };
                values.insert("AUTH_CACHE_SIZE", size.into());
            }
            Auth::Dict { socket } => {
                values.insert("DOVEAUTH_SOCKET", s(socket));
            }
        }
        values
    }

    /// Writes dovecot.conf and the files it includes, as scripts/relay's
    /// `render_configs`, then the test overrides.
    fn write_conf(&self) {
        let root = &self.root;
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
        std::fs::copy(
            binary("chatmail-expire", "chatmail-quota-expire"),
            bin.join("chatmail-quota-expire"),
        )
        .unwrap();
        let values = self.values();
        let templates = if self.series.is_24() {
            "relay/dovecot-2.4"
        } else {
            "relay/dovecot"
        };
        let repo = repo();
        let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();
        let write = |name: &str, text: String| std::fs::write(conf_dir.join(name), text).unwrap();
        let main = render(&read(&format!("{templates}/dovecot.conf.in")), &values);
        write("dovecot.conf", format!("{main}\n{}", self.overrides()));
        match &self.auth {
            Auth::Lua { script_tail, .. } => {
                write(
                    "auth-backend.conf",
                    render(&read(&format!("{templates}/auth-lua.conf.in")), &values),
                );
                // The Lua files are the same for both series.
                let script = render(&read("relay/dovecot/auth.lua.in"), &values);
                write("auth.lua", format!("{script}{script_tail}"));
            }
            Auth::Dict { .. } => {
                assert!(
                    !self.series.is_24(),
                    "Dovecot 2.4 has no dict passdb/userdb"
                );
                write(
                    "auth-backend.conf",
                    render(&read("relay/dovecot/auth-dict.conf.in"), &values),
                );
                write(
                    "auth.conf",
                    render(&read("relay/dovecot/auth.conf.in"), &values),
                );
            }
        }
        write(
            "push_notification.lua",
            read("relay/dovecot/push_notification.lua"),
        );
        self.write_cert();
    }

    /// What a test changes: own ports, plaintext logins from loopback, no delays.
    fn overrides(&self) -> String {
        let (series_overrides, address) = if self.series.is_24() {
            ("ssl = yes\nauth_allow_cleartext = yes\n", "listen")
        } else {
            ("disable_plaintext_auth = no\n", "address")
        };
        let (imap_port, lmtp_port) = (self.imap_port, self.lmtp_port);
        format!(
            "# --- test overrides: own ports, plaintext logins from loopback, no delays\n{series_overrides}login_trusted_networks = 127.0.0.0/8\nauth_failure_delay = 0\nservice imap-login {{\n  inet_listener imap {{\n    {address} = 127.0.0.1\n    port = {imap_port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\nservice lmtp {{\n  inet_listener lmtp {{\n    {address} = 127.0.0.1\n    port = {lmtp_port}\n  }}\n}}\n"
        )
    }

    /// A self-signed certificate for `ssl_cert`/`ssl_key`.
    fn write_cert(&self) {
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
            .arg(self.root.join("key.pem"))
            .arg("-out")
            .arg(self.root.join("cert.pem"))
            .output()
            .expect("openssl");
        assert!(cert.status.success());
    }
}
