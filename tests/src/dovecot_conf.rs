//! A test Dovecot configured by the local relay's own renderer (`chatmail-render`): the
//! test's `chatmail.ini` read by the services' parser, the templates of `relay/dovecot/`
//! (2.3) or `relay/dovecot-2.4/` (2.4), the local relay's layout under a private directory.
//! So what the tests run is what `scripts/relay` runs. Only a few test overrides are
//! appended: own loopback ports, plaintext logins from loopback, no failure delays.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chatmail_render::path_of;
pub use chatmail_render::{Auth, Dovecot, Layout};
use chatmail_render::{Part, Relay};
use chatmaild::daemons::{self, Daemon};

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
    /// The configuration language of this Dovecot.
    pub fn dovecot(self) -> Dovecot {
        match self {
            Series::Host => Dovecot::installed().expect("this machine's dovecot --version"),
            Series::Debian13 => Dovecot::V24,
        }
    }

    /// Whether this Dovecot speaks 2.4's configuration language.
    pub fn is_24(self) -> bool {
        self.dovecot() == Dovecot::V24
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

/// A test Dovecot: the local relay's layout under `root` (its `chatmail.ini` is
/// `root/chatmail.ini`, written by the caller), with its own ports.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Which Dovecot.
    pub series: Series,
    /// Where everything is: state in `root`, Dovecot's base directory in `root/run`, the
    /// services' sockets in `root/svc`.
    pub layout: Layout,
    /// passdb/userdb.
    pub auth: Auth,
    /// `auth_cache_ttl` with Lua auth (the relay's default is 0: no cache).
    pub cache_ttl: String,
    /// Lua appended to the rendered auth.lua (a test's variation of the script).
    pub lua_tail: String,
    /// The IMAP port on 127.0.0.1.
    pub imap_port: u16,
    /// The LMTP port on 127.0.0.1.
    pub lmtp_port: u16,
}

impl Instance {
    /// An instance in `root` on free ports; creates the runtime directories of the dict
    /// services (owned by `owner`, the services' user).
    pub fn new(series: Series, root: &Path, auth: Auth, owner: (u32, u32)) -> Instance {
        let imap_port = crate::support::free_port();
        let mut layout = Layout::new(root, root.join("run"), root.join("svc"));
        layout.name = format!("rd{imap_port}");
        for d in [daemons::DOVEAUTH, daemons::LASTLOGIN, daemons::METADATA] {
            let dir = layout.socket(&d).unwrap();
            let dir = dir.parent().unwrap();
            std::fs::create_dir_all(dir).unwrap();
            std::os::unix::fs::chown(dir, Some(owner.0), Some(owner.1)).unwrap();
        }
        Instance {
            series,
            layout,
            auth,
            cache_ttl: "0".into(),
            lua_tail: String::new(),
            imap_port,
            lmtp_port: crate::support::free_port(),
        }
    }

    /// The dict socket of `daemon` (doveauth, lastlogin, chatmail-metadata).
    pub fn socket(&self, daemon: &Daemon) -> PathBuf {
        self.layout.socket(daemon).unwrap()
    }

    /// The `chatmail.ini` the configuration is rendered from.
    pub fn ini(&self) -> PathBuf {
        self.layout.ini()
    }

    fn path(&self, name: &str) -> PathBuf {
        path_of(&self.layout.paths(), name).unwrap().to_path_buf()
    }

    /// The rendered dovecot.conf.
    pub fn conf(&self) -> PathBuf {
        self.path("DOVECOT_CONF")
    }

    /// Renders the configuration (with a fresh certificate and the quota-warning script in
    /// the bin directory) and starts Dovecot; returns once it listens on both ports.
    pub fn start(&self) -> Child {
        if self.series == Series::Debian13 {
            ensure_debian13();
        }
        self.write_conf();
        let mut child = command(self.series, &self.layout.state, "dovecot")
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
        let out = command(self.series, &self.layout.state, "doveadm")
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
        std::fs::read_to_string(self.path("DOVECOT_LOG_FILE")).unwrap_or_default()
    }

    /// The local relay's renderer for this instance (reads its `chatmail.ini`).
    pub fn relay(&self) -> Relay {
        Relay::load(
            self.layout.clone(),
            self.series.dovecot(),
            self.auth,
            &self.cache_ttl,
        )
        .unwrap_or_else(|e| panic!("chatmail-render: {e}"))
    }

    /// Writes Dovecot's part of the configuration as `scripts/relay` renders it, then the
    /// test overrides, and the directories Dovecot needs.
    fn write_conf(&self) {
        for name in [
            "BIN_DIR",
            "LOG_DIR",
            "RUN_DIR",
            "DOVECOT_STATE_DIR",
            "DOVECOT_CONF_DIR",
        ] {
            std::fs::create_dir_all(self.path(name)).unwrap();
        }
        std::fs::create_dir_all(self.path("POSTFIX_QUEUE_DIR").join("private")).unwrap();
        // The quota-warning script must be reachable from inside the Debian 13 root too.
        std::fs::copy(
            binary("chatmail-expire", "chatmail-quota-expire"),
            self.path("BIN_DIR").join("chatmail-quota-expire"),
        )
        .unwrap();
        let rendered = self
            .relay()
            .render(&repo().join("relay"))
            .unwrap_or_else(|e| panic!("chatmail-render: {e}"));
        let conf = self.conf();
        for file in rendered.into_iter().filter(|r| r.part == Part::Dovecot) {
            let mut text = file.text;
            if file.target == conf {
                text = format!("{text}\n{}", self.overrides());
            }
            if file.target.file_name() == Some(std::ffi::OsStr::new("auth.lua")) {
                text.push_str(&self.lua_tail);
            }
            std::fs::write(&file.target, text).unwrap();
        }
        self.write_cert();
    }

    /// What a test changes: own ports, plaintext logins from loopback, no delays.
    fn overrides(&self) -> String {
        let d = self.series.dovecot();
        let (plaintext, address) = (d.plaintext_login_settings(), d.listener_address_key());
        let (imap_port, lmtp_port) = (self.imap_port, self.lmtp_port);
        format!(
            "# --- test overrides: own ports, plaintext logins from loopback, no delays\n{plaintext}login_trusted_networks = 127.0.0.0/8\nauth_failure_delay = 0\nservice imap-login {{\n  inet_listener imap {{\n    {address} = 127.0.0.1\n    port = {imap_port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\nservice lmtp {{\n  inet_listener lmtp {{\n    {address} = 127.0.0.1\n    port = {lmtp_port}\n  }}\n}}\n"
        )
    }

    /// A self-signed certificate for `ssl_cert`/`ssl_key`.
    fn write_cert(&self) {
        let (cert, key) = (self.path("TLS_CERT"), self.path("TLS_KEY"));
        std::fs::create_dir_all(cert.parent().unwrap()).unwrap();
        let out = Command::new("openssl")
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
            .arg(key)
            .arg("-out")
            .arg(cert)
            .output()
            .expect("openssl");
        assert!(out.status.success());
    }
}
