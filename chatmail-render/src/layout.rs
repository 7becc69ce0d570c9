//! Where a local relay keeps everything, derived from three directories: its state
//! (configuration, certificate, queue, mailboxes, logs), its run directory (pid files,
//! Dovecot's base directory, fcgiwrap's socket) and the root of the daemons' runtime
//! directories (`/run` as on a deployed relay, or a scratch directory). `scripts/relay` and
//! the test harness both take their paths from here, by the names [`Layout::paths`] gives
//! them, which are also the templates' placeholders. A second relay on the same machine is
//! another `Layout` ([`Layout::instance`]): its own directories, `listen` address (and so
//! IP-only mail domain) and Dovecot `name`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chatmaild::daemons::{self, Daemon};

/// The highest relay number: 127.0.0.255 is loopback's broadcast address.
pub const MAX_INSTANCE: u8 = 254;

/// One local relay's places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Persistent state.
    pub state: PathBuf,
    /// Pid files and runtime sockets of Dovecot, nginx and fcgiwrap.
    pub run: PathBuf,
    /// Where the daemons' runtime directories are (`/run` by default).
    pub socket_root: PathBuf,
    /// The loopback address its servers listen on, and its IP-only mail domain.
    pub listen: Ipv4Addr,
    /// Dovecot's `instance_name`, which `doveadm` tells instances apart by.
    pub name: String,
}

impl Layout {
    /// The local relay on 127.0.0.1 in these directories.
    pub fn new(
        state: impl Into<PathBuf>,
        run: impl Into<PathBuf>,
        socket_root: impl Into<PathBuf>,
    ) -> Layout {
        Layout {
            state: state.into(),
            run: run.into(),
            socket_root: socket_root.into(),
            listen: Ipv4Addr::LOCALHOST,
            name: "chatmail-local".into(),
        }
    }

    /// Local relay number `n` of this machine (1 to 254): it listens on `127.0.0.<n>`, which
    /// is also its IP-only mail domain, so relays find each other by their domain literals
    /// without DNS. Relay 1 is the one of [`Layout::new`]; its Dovecot keeps the name
    /// `chatmail-local`, the others are `chatmail-local-<n>`.
    pub fn instance(self, n: u8) -> Option<Layout> {
        if !(1..=MAX_INSTANCE).contains(&n) {
            return None;
        }
        let name = if n == 1 {
            self.name
        } else {
            format!("chatmail-local-{n}")
        };
        Some(Layout {
            listen: Ipv4Addr::new(127, 0, 0, n),
            name,
            ..self
        })
    }

    fn state(&self, path: &str) -> PathBuf {
        self.state.join(path)
    }

    /// `chatmail.ini`.
    pub fn ini(&self) -> PathBuf {
        self.state("chatmail.ini")
    }

    /// The binaries the relay runs (copies, so a rebuild never replaces a running file).
    pub fn bin_dir(&self) -> PathBuf {
        self.state("bin")
    }

    /// The logs of every process.
    pub fn log_dir(&self) -> PathBuf {
        self.state("log")
    }

    /// `nocreate_file` of a new `chatmail.ini`: in the state directory, so closing the
    /// local relay's registration never touches this machine's `/etc`.
    pub fn nocreate_file(&self) -> PathBuf {
        self.state("chatmail-nocreate")
    }

    /// `mailboxes_dir` of a new `chatmail.ini`.
    pub fn mailboxes_dir(&self) -> PathBuf {
        self.state.join("mail").join(self.listen.to_string())
    }

    /// The directory of Dovecot's configuration.
    pub fn dovecot_conf_dir(&self) -> PathBuf {
        self.state("dovecot")
    }

    /// The directory of Postfix's configuration.
    pub fn postfix_conf_dir(&self) -> PathBuf {
        self.state("postfix")
    }

    /// Postfix's queue directory (its `private/` holds Dovecot's LMTP and SASL sockets).
    pub fn postfix_queue_dir(&self) -> PathBuf {
        self.state("spool")
    }

    /// nginx's configuration file.
    pub fn nginx_conf(&self) -> PathBuf {
        self.state("nginx/nginx.conf")
    }

    /// The socket of `daemon` under this relay's socket root.
    pub fn socket(&self, daemon: &Daemon) -> Option<PathBuf> {
        daemon.socket_in(&self.socket_root)
    }

    /// Every place by name: the templates' placeholders and what `scripts/relay` reads.
    pub fn paths(&self) -> Vec<(&'static str, PathBuf)> {
        let log = self.log_dir();
        let nginx_dir = self.state("nginx");
        let fcgiwrap_dir = self.run.join("fcgiwrap");
        let dovecot_conf = self.dovecot_conf_dir();
        let mut paths = vec![
            ("STATE_DIR", self.state.clone()),
            ("RUN_DIR", self.run.clone()),
            ("INI", self.ini()),
            ("BIN_DIR", self.bin_dir()),
            ("LOG_DIR", log.clone()),
            ("TEXTFILE_DIR", self.state("metrics")),
            ("TLS_CERT", self.state("tls/cert.pem")),
            ("TLS_KEY", self.state("tls/key.pem")),
            ("POSTFIX_CONF_DIR", self.postfix_conf_dir()),
            ("POSTFIX_QUEUE_DIR", self.postfix_queue_dir()),
            ("POSTFIX_DATA_DIR", self.state("postfix-data")),
            ("POSTFIX_LOG_FILE", log.join("postfix.log")),
            ("DOVECOT_CONF", dovecot_conf.join("dovecot.conf")),
            ("DOVECOT_CONF_DIR", dovecot_conf),
            ("DOVECOT_BASE_DIR", self.run.join("dovecot")),
            ("DOVECOT_STATE_DIR", self.state("dovecot-state")),
            ("DOVECOT_LOG_FILE", log.join("dovecot.log")),
            ("NGINX_CONF", self.nginx_conf()),
            ("NGINX_TEMP_DIR", nginx_dir.join("tmp")),
            ("NGINX_PID", self.run.join("nginx.pid")),
            ("NGINX_ERROR_LOG", log.join("nginx-error.log")),
            ("NGINX_ACCESS_LOG", log.join("nginx-access.log")),
            ("FCGIWRAP_SOCKET", fcgiwrap_dir.join("fcgiwrap.sock")),
            ("FCGIWRAP_DIR", fcgiwrap_dir),
        ];
        for (name, daemon) in [
            ("DOVEAUTH_SOCKET", daemons::DOVEAUTH),
            ("LASTLOGIN_SOCKET", daemons::LASTLOGIN),
            ("METADATA_SOCKET", daemons::METADATA),
        ] {
            paths.extend(self.socket(&daemon).map(|s| (name, s)));
        }
        paths
    }

    /// The settings of the local relay that are not paths: how it differs from a
    /// production host (loopback only, no chroot, one IMAP login process).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let listen = self.listen.to_string();
        vec![
            ("DOVECOT_INSTANCE", self.name.clone()),
            // The address of this relay (scripts/relay checks its ports on it).
            ("LISTEN", listen.clone()),
            ("DOVECOT_LISTEN", listen.clone()),
            ("NGINX_LISTEN", listen.clone()),
            // Postfix's smtpd services bind this address only (a second local relay binds
            // its own); the reinjection services name theirs in master.cf (postfix_host).
            ("INET_INTERFACES", listen),
            ("INET_PROTOCOLS", "ipv4".into()),
            ("POSTFIX_SYSLOG_NAME", "postfix".into()),
            // Its queue directory has no chroot environment.
            ("CHROOT", "n".into()),
            ("IMAP_LOGIN_MIN_AVAIL", "1".into()),
        ]
    }

    /// Each daemon with its metrics socket under this relay's socket root, in start order.
    pub fn daemons(&self) -> Vec<(&'static str, Option<PathBuf>)> {
        daemons::DAEMONS
            .iter()
            .map(|d| (d.name, d.metrics_socket_in(&self.socket_root)))
            .collect()
    }
}

/// The path of `name` in [`Layout::paths`] (for tests and callers that hold the list).
pub fn path_of<'a>(paths: &'a [(&'static str, PathBuf)], name: &str) -> Option<&'a Path> {
    paths
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p.as_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_relay() {
        let l = Layout::new("/var/lib/chatmail-local", "/run/chatmail-local", "/run");
        let paths = l.paths();
        for (name, want) in [
            ("INI", "/var/lib/chatmail-local/chatmail.ini"),
            (
                "DOVECOT_CONF",
                "/var/lib/chatmail-local/dovecot/dovecot.conf",
            ),
            ("DOVECOT_BASE_DIR", "/run/chatmail-local/dovecot"),
            (
                "FCGIWRAP_SOCKET",
                "/run/chatmail-local/fcgiwrap/fcgiwrap.sock",
            ),
            (
                "LASTLOGIN_SOCKET",
                "/run/chatmail-lastlogin/lastlogin.socket",
            ),
            ("DOVEAUTH_SOCKET", "/run/doveauth/doveauth.socket"),
        ] {
            assert_eq!(path_of(&paths, name), Some(Path::new(want)), "{name}");
        }
        assert_eq!(
            l.mailboxes_dir(),
            Path::new("/var/lib/chatmail-local/mail/127.0.0.1")
        );
        let daemons = l.daemons();
        assert_eq!(daemons.first().map(|d| d.0), Some("doveauth"));
        assert!(daemons.contains(&(
            "filtermail-incoming",
            Some("/run/filtermail-incoming/metrics.socket".into())
        )));
    }

    #[test]
    fn instances() {
        let base = Layout::new("/s", "/r", "/x");
        assert_eq!(base.clone().instance(1), Some(base.clone()));
        let two = base.clone().instance(2).unwrap();
        assert_eq!(two.listen, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(two.name, "chatmail-local-2");
        assert_eq!(two.mailboxes_dir(), Path::new("/s/mail/127.0.0.2"));
        let settings = two.settings();
        for name in [
            "LISTEN",
            "DOVECOT_LISTEN",
            "NGINX_LISTEN",
            "INET_INTERFACES",
        ] {
            let value = settings.iter().find(|s| s.0 == name).map(|s| s.1.as_str());
            assert_eq!(value, Some("127.0.0.2"), "{name}");
        }
        assert_eq!(base.clone().instance(254).unwrap().listen.octets()[3], 254);
        assert_eq!(base.clone().instance(0), None);
        assert_eq!(base.instance(255), None);
    }

    #[test]
    fn names_are_unique() {
        let l = Layout::new("/s", "/r", "/x");
        let mut names: Vec<&str> = l.paths().iter().map(|p| p.0).collect();
        names.extend(l.settings().iter().map(|s| s.0));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
