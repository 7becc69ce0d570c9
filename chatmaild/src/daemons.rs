//! The relay's daemons in one table: name (unit and metrics label), binary, runtime
//! directory, dict socket and metrics socket (SPEC §10.1).
//!
//! Everything that needs one of these paths reads it here: each daemon's default metrics
//! socket (filtermail per mode, doveauth in HTTP mode), `chatmail-exporter`'s default
//! sources, and the local relay's renderer, which puts the same names under another root
//! (`CHATMAIL_SOCKET_ROOT`) so a development relay can run without touching `/run`.
//! The systemd units in `systemd/` are static files with the same paths;
//! `exporter/tests/defaults.rs` compares them with this table.

use std::path::{Path, PathBuf};

use crate::metrics::SOCKET_NAME;

/// Where systemd creates each unit's `RuntimeDirectory=`.
pub const RUN_ROOT: &str = "/run";

/// One daemon of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemon {
    /// The name of its unit (`<name>.service`), its `service` label in the exporter's
    /// figures and, on the local relay, its pid and log file.
    pub name: &'static str,
    /// The executable it runs.
    pub binary: &'static str,
    /// Its unit's `RuntimeDirectory=`, holding its dict socket and its metrics socket;
    /// `None` for a daemon that publishes no metrics socket (the exporter itself).
    pub runtime_dir: Option<&'static str>,
    /// The file name of its dict socket in `runtime_dir`, for the three dict services.
    pub socket: Option<&'static str>,
}

impl Daemon {
    /// Its dict socket under `root` (e.g. `/run/chatmail-lastlogin/lastlogin.socket`).
    pub fn socket_in(&self, root: &Path) -> Option<PathBuf> {
        Some(root.join(self.runtime_dir?).join(self.socket?))
    }

    /// Its metrics socket under `root` (e.g. `/run/filtermail-incoming/metrics.socket`):
    /// beside the dict socket, so the services and the exporter agree on the path without
    /// a setting.
    pub fn metrics_socket_in(&self, root: &Path) -> Option<PathBuf> {
        Some(root.join(self.runtime_dir?).join(SOCKET_NAME))
    }

    /// Its metrics socket on a deployed relay, under [`RUN_ROOT`].
    pub fn metrics_socket(&self) -> Option<PathBuf> {
        self.metrics_socket_in(Path::new(RUN_ROOT))
    }
}

/// doveauth: passdb/userdb over the dict protocol (`doveauth.service`), or HTTP `/create`
/// for Dovecot's Lua passdb (`doveauth-http.service`, the same runtime directory).
pub const DOVEAUTH: Daemon = Daemon {
    name: "doveauth",
    binary: "doveauth",
    runtime_dir: Some("doveauth"),
    socket: Some("doveauth.socket"),
};

/// lastlogin: Dovecot's `last_login` dict.
pub const LASTLOGIN: Daemon = Daemon {
    name: "lastlogin",
    binary: "lastlogin",
    runtime_dir: Some("chatmail-lastlogin"),
    socket: Some("lastlogin.socket"),
};

/// chatmail-metadata: Dovecot's IMAP METADATA dict.
pub const METADATA: Daemon = Daemon {
    name: "chatmail-metadata",
    binary: "chatmail-metadata",
    runtime_dir: Some("chatmail-metadata"),
    socket: Some("metadata.socket"),
};

/// filtermail in `outgoing` mode.
pub const FILTERMAIL: Daemon = Daemon {
    name: "filtermail",
    binary: "filtermail",
    runtime_dir: Some("filtermail"),
    socket: None,
};

/// filtermail in `incoming` mode.
pub const FILTERMAIL_INCOMING: Daemon = Daemon {
    name: "filtermail-incoming",
    binary: "filtermail",
    runtime_dir: Some("filtermail-incoming"),
    socket: None,
};

/// filtermail in `transport` mode.
pub const FILTERMAIL_TRANSPORT: Daemon = Daemon {
    name: "filtermail-transport",
    binary: "filtermail",
    runtime_dir: Some("filtermail-transport"),
    socket: None,
};

/// chatmail-exporter: reads the others' metrics sockets, serves `/metrics` over HTTP.
pub const EXPORTER: Daemon = Daemon {
    name: "chatmail-exporter",
    binary: "chatmail-exporter",
    runtime_dir: None,
    socket: None,
};

/// Every daemon, in start order: the dict services before Dovecot needs them, the filters,
/// then the exporter that reads them all. They stop in the reverse order.
pub const DAEMONS: &[Daemon] = &[
    DOVEAUTH,
    LASTLOGIN,
    METADATA,
    FILTERMAIL,
    FILTERMAIL_INCOMING,
    FILTERMAIL_TRANSPORT,
    EXPORTER,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployed_paths() {
        assert_eq!(
            LASTLOGIN.socket_in(Path::new(RUN_ROOT)),
            Some(PathBuf::from("/run/chatmail-lastlogin/lastlogin.socket"))
        );
        assert_eq!(
            FILTERMAIL_TRANSPORT.metrics_socket(),
            Some(PathBuf::from("/run/filtermail-transport/metrics.socket"))
        );
        assert_eq!(FILTERMAIL.socket_in(Path::new(RUN_ROOT)), None);
        assert_eq!(EXPORTER.metrics_socket(), None);
        // Every metrics socket sits beside the dict socket, where `socket_path` looks.
        for d in DAEMONS {
            if let Some(socket) = d.socket_in(Path::new(RUN_ROOT)) {
                assert_eq!(
                    d.metrics_socket(),
                    Some(crate::metrics::socket_path(&socket))
                );
            }
        }
    }

    #[test]
    fn names_and_runtime_dirs_are_unique() {
        for (i, a) in DAEMONS.iter().enumerate() {
            for b in DAEMONS.iter().skip(i + 1) {
                assert_ne!(a.name, b.name);
                assert!(a.runtime_dir.is_none() || a.runtime_dir != b.runtime_dir);
            }
        }
    }
}
