//! `chatmail.ini`: the file syntax of Python's `iniconfig`, the keys and defaults of
//! chatmaild's `config.py` and the values derived from them (SPEC §1).
//!
//! [`Config::parse`] is pure; [`Config::load`] only adds the read. The parts follow the
//! spec's sections: the file syntax (`ini`, §1.1), typed values (`value`, §1.2), derived
//! values (`derived`, §1.3) and unknown keys (§1.4, here). Every bad value is an
//! [`Error::Config`] naming the line, key and value: a relay must never start on a
//! silently substituted default. Unknown keys are kept in [`Config::unused_keys`] and are
//! not errors, because the deployment tool and other services share the file.

mod derived;
mod ini;
mod value;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::error::{ConfigProblem as Problem, Error};

pub use ini::{Params, parse_ini};
pub use value::parse_size_mb;

use derived::{Domain, Tls};
#[cfg(test)]
use value::parse_strict_ipv4;
use value::{Reader, cfg_err};

/// Where the units and the CLIs look for the config when none is given.
pub const DEFAULT_INI: &str = "/usr/local/lib/chatmaild/chatmail.ini";

/// Default of `doveauth_http_port`: the next free port after filtermail's 10080–10083.
pub const DOVEAUTH_HTTP_PORT: u16 = 10084;

/// The notification service the reference posts device tokens to (SPEC §5.5).
pub const DEFAULT_NOTIFICATION_URL: &str = "https://notifications.delta.chat/notify";

/// Default `max_queued_notifications`. chatmail-metadata keeps at most one waiting
/// notification per device token (a burst of messages is one push) plus the few in flight,
/// so legitimate traffic reaches this only with tens of thousands of devices waiting at
/// once; the files then take about 400 MB of disk (one block each) and as much memory as
/// their tokens (about 100 MB with today's 900-byte tokens).
pub const DEFAULT_MAX_QUEUED_NOTIFICATIONS: usize = 100_000;

/// The reference's flag file: while it exists, no account is created.
pub const DEFAULT_NOCREATE_FILE: &str = "/etc/chatmail-nocreate";

/// Least default `tombstone_days`: a year, so the contacts of a removed address have long
/// stopped writing to it before anyone else can take it. The default is this or
/// `delete_inactive_users_after`, whichever is larger.
pub const DEFAULT_TOMBSTONE_DAYS: u64 = 365;

/// Default `max_creations_per_minute`: 0, no cap, as the reference has none. A relay-wide
/// default would refuse a burst of legitimate first logins (a workshop, a load test) and let
/// one client spend the whole budget; an operator who wants a cap sets it per client.
pub const DEFAULT_MAX_CREATIONS_PER_MINUTE: u32 = 0;

/// `max_creations_per_minute_total`, when absent, is this many times the per-client cap: a
/// relay-wide ceiling far above what one client may create, so a few busy clients do not
/// lock everyone else out, yet a flood from many addresses stays bounded.
pub const CREATIONS_TOTAL_FACTOR: u32 = 10;

/// Default `doveauth_http_host` and `metrics_host`: loopback only, as the reference.
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Default `metrics_port`: beside filtermail's 10080-10084, clear of mtail's 3903.
pub const DEFAULT_METRICS_PORT: u16 = 10089;

/// How new password hashes are written (existing files are always served verbatim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordScheme {
    /// `{SHA512-CRYPT}$6$...`, what every Dovecot build verifies and the reference writes.
    Sha512Crypt,
    /// `{ARGON2ID}$argon2id$...`, opt-in; needs a Dovecot built with libsodium (Debian's is).
    Argon2id,
}

/// Which TLS certificate the relay uses (SPEC §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsCertMode {
    /// `tls_external_cert_and_key` names the files.
    External {
        /// Certificate chain path.
        cert: PathBuf,
        /// Private key path.
        key: PathBuf,
    },
    /// Self-signed certificate (IP relays and `_`-domains).
    SelfSigned,
    /// Certificates obtained with ACME.
    Acme,
}

impl TlsCertMode {
    /// The reference's name of the mode (`external`, `self`, `acme`).
    pub fn name(&self) -> &'static str {
        match self {
            TlsCertMode::External { .. } => "external",
            TlsCertMode::SelfSigned => "self",
            TlsCertMode::Acme => "acme",
        }
    }
}

/// The typed `[params]` section of `chatmail.ini`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (empty for [`Config::parse`]).
    pub path: PathBuf,
    /// The domain of addresses: `[1.2.3.4]` on IPv4 relays, else the configured name.
    pub mail_domain: String,
    /// `mail_domain` exactly as configured.
    pub mail_domain_bare: String,
    /// The relay's IPv4 address when `mail_domain` is one.
    pub ipv4_relay: Option<Ipv4Addr>,
    /// Postfix's `myhostname`: the reverse-pointer name on IPv4 relays.
    pub postfix_myhostname: String,
    /// filtermail outgoing rate: messages per minute per sender.
    pub max_user_send_per_minute: u32,
    /// filtermail GCRA burst capacity.
    pub max_user_send_burst_size: u32,
    /// `max_mailbox_size` as written (e.g. `500M`).
    pub max_mailbox_size: String,
    /// `max_mailbox_size` in megabytes.
    pub max_mailbox_size_mb: u64,
    /// Largest accepted message in bytes.
    pub max_message_size: u64,
    /// Days after which any message is expired.
    pub delete_mails_after: u64,
    /// Days after which messages over 200,000 bytes in `cur/` are expired.
    pub delete_large_after: u64,
    /// Days without login after which a whole mailbox is removed.
    pub delete_inactive_users_after: u64,
    /// Shortest local part doveauth creates.
    pub username_min_length: usize,
    /// Longest local part doveauth creates (and newemail generates).
    pub username_max_length: usize,
    /// Shortest password doveauth accepts for a new account.
    pub password_min_length: usize,
    /// filtermail outgoing SMTP port.
    pub filtermail_smtp_port: u16,
    /// filtermail incoming SMTP port.
    pub filtermail_smtp_port_incoming: u16,
    /// filtermail incoming HTTP (`/mxdeliv`) port.
    pub filtermail_http_port_incoming: u16,
    /// filtermail transport LMTP port.
    pub filtermail_lmtp_port_transport: u16,
    /// doveauth's HTTP `/create` port (Lua auth, SPEC §3.9).
    pub doveauth_http_port: u16,
    /// The loopback address doveauth's HTTP mode listens on and its clients (the Lua auth
    /// script, the newemail CGI) connect to: `127.0.0.1` unless a second relay on the same
    /// machine needs its own.
    pub doveauth_http_host: IpAddr,
    /// Postfix port filtermail reinjects outgoing mail to.
    pub postfix_reinject_port: u16,
    /// Postfix port filtermail reinjects incoming mail to.
    pub postfix_reinject_port_incoming: u16,
    /// Address filtermail listens on.
    pub filtermail_host: String,
    /// Host filtermail reinjects to.
    pub postfix_host: String,
    /// Message bytes one filtermail process holds at once (SMTP and HTTP together), in
    /// MiB; past it new messages fail temporarily.
    pub filtermail_memory_budget_mb: u64,
    /// DKIM signatures filtermail verifies per incoming message at most.
    pub filtermail_max_dkim_signatures: usize,
    /// Port of `chatmail-exporter`'s `/metrics`.
    pub metrics_port: u16,
    /// The loopback address `chatmail-exporter` listens on (`127.0.0.1`; another for a
    /// second relay on the same machine).
    pub metrics_host: IpAddr,
    /// Dovecot's IMAP connection limit (deploy only: read by the relay's configuration).
    pub max_imap_connections: u64,
    /// Postfix's SMTP connection limit (deploy only: read by the relay's configuration).
    pub max_smtp_connections: u64,
    /// Whether Dovecot offers IMAP COMPRESS (deploy only; `true` in any letter case, as
    /// Python's `.lower() == "true"`; any other value is false).
    pub imap_compress: bool,
    /// Unix socket of chatmail-turn.
    pub turn_socket_path: PathBuf,
    /// Iroh relay URL handed to clients; empty disables it.
    pub iroh_relay: String,
    /// Whether the relay runs its own iroh relay (key absent).
    pub enable_iroh_relay: bool,
    /// Account creation is refused above this 1-minute load average.
    pub max_load_1m: f64,
    /// Account creation is refused below this much available memory (MiB).
    pub min_available_memory_mb: u64,
    /// Account creation is refused below this much free disk (MiB).
    pub min_free_disk_space_mb: u64,
    /// The TLS certificate mode.
    pub tls_cert_mode: TlsCertMode,
    /// Certificate path of the mode.
    pub tls_cert_path: PathBuf,
    /// Key path of the mode.
    pub tls_key_path: PathBuf,
    /// Root of all mailboxes.
    pub mailboxes_dir: PathBuf,
    /// Legacy sqlite password database, migrated once (SPEC §3.7).
    pub passdb_path: PathBuf,
    /// Where chatmail-metadata posts device tokens.
    pub notification_url: String,
    /// An operator-provided `appversions.json`, read on every lookup.
    pub appversions_path: Option<PathBuf>,
    /// Most notifications chatmail-metadata keeps queued (files in
    /// `pending_notifications/`); past it new ones are dropped and counted. 0: no bound.
    pub max_queued_notifications: usize,
    /// Scheme of new password hashes.
    pub password_scheme: PasswordScheme,
    /// Days an address removed by `chatmail-admin delete` or by `chatmail-expire` cannot be
    /// registered again; 0 writes no tombstones.
    pub tombstone_days: u64,
    /// Most accounts created by first login per minute from one client address; 0 means no
    /// cap.
    pub max_creations_per_minute: u32,
    /// Most accounts created by first login per minute relay-wide, whatever the client; 0
    /// means no ceiling. Defaults to [`CREATIONS_TOTAL_FACTOR`] times
    /// `max_creations_per_minute` (so both are off unless one is set).
    pub max_creations_per_minute_total: u32,
    /// While this file exists no account is created (`registration close`).
    pub nocreate_file: PathBuf,
    /// Keys of `[params]` that no service reads, in file order.
    pub unused_keys: Vec<String>,
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Config {
            path: path.into(),
            line: 0,
            key: "file".into(),
            reason: Problem::NotUtf8(e.utf8_error()),
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            Error::Config {
                line, key, reason, ..
            } => Error::Config {
                path: path.into(),
                line,
                key,
                reason,
            },
            other => other,
        })?;
        config.path = path.into();
        Ok(config)
    }

    /// Parses the text of a `chatmail.ini`.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let sections = parse_ini(text)?;
        let params = sections
            .get("params")
            .ok_or_else(|| cfg_err(0, "[params]", Problem::MissingSection))?;
        let mut p = Reader::new(params);
        let domain = Domain::read(&mut p)?;
        let mut config = Config::read_keys(&mut p, domain)?;
        check_deploy_keys(&mut p);
        config.unused_keys = unused_keys(params, &p.used);
        Ok(config)
    }

    /// The bytes of messages one filtermail process holds at once (the filters and
    /// transport mode alike): `filtermail_memory_budget`, but never less than one message of
    /// `max_message_size` (a smaller budget would defer such messages forever).
    pub fn filtermail_memory_budget_bytes(&self) -> u64 {
        self.filtermail_memory_budget_mb
            .saturating_mul(1024 * 1024)
            .max(self.max_message_size)
    }

    /// Every key of SPEC §1.2 with its default, in one literal: a table, not logic, which
    /// is why this function is longer than the others.
    /// The derived values are read first, in the order the checks have always run.
    fn read_keys(p: &mut Reader<'_>, domain: Domain) -> Result<Config, Error> {
        let max_mailbox_size = p.string("max_mailbox_size", "500M");
        let max_mailbox_size_mb = p.size_mb("max_mailbox_size", "500M")?;
        let (iroh_relay, enable_iroh_relay) = derived::iroh_relay(p, &domain);
        let tls = Tls::read(p, &domain)?;
        let password_scheme = derived::password_scheme(p)?;
        let delete_inactive_users_after = p.int("delete_inactive_users_after", 90)?;
        let max_creations_per_minute =
            p.int("max_creations_per_minute", DEFAULT_MAX_CREATIONS_PER_MINUTE)?;
        Ok(Config {
            path: PathBuf::new(),
            max_user_send_per_minute: p.int("max_user_send_per_minute", 60)?,
            max_user_send_burst_size: p.int("max_user_send_burst_size", 10)?,
            max_mailbox_size,
            max_mailbox_size_mb,
            max_message_size: p.int("max_message_size", 31_457_280)?,
            delete_mails_after: p.int("delete_mails_after", 20)?,
            delete_large_after: p.int("delete_large_after", 7)?,
            delete_inactive_users_after,
            tombstone_days: p.int(
                "tombstone_days",
                delete_inactive_users_after.max(DEFAULT_TOMBSTONE_DAYS),
            )?,
            max_creations_per_minute,
            max_creations_per_minute_total: p.int(
                "max_creations_per_minute_total",
                max_creations_per_minute.saturating_mul(CREATIONS_TOTAL_FACTOR),
            )?,
            nocreate_file: p.string("nocreate_file", DEFAULT_NOCREATE_FILE).into(),
            username_min_length: p.int("username_min_length", 9)?,
            username_max_length: p.int("username_max_length", 9)?,
            password_min_length: p.int("password_min_length", 9)?,
            filtermail_smtp_port: p.int("filtermail_smtp_port", 10080)?,
            filtermail_smtp_port_incoming: p.int("filtermail_smtp_port_incoming", 10081)?,
            filtermail_http_port_incoming: p.int("filtermail_http_port_incoming", 10082)?,
            filtermail_lmtp_port_transport: p.int("filtermail_lmtp_port_transport", 10083)?,
            doveauth_http_port: p.int("doveauth_http_port", DOVEAUTH_HTTP_PORT)?,
            doveauth_http_host: p.ip("doveauth_http_host", LOCALHOST)?,
            postfix_reinject_port: p.int("postfix_reinject_port", 10025)?,
            postfix_reinject_port_incoming: p.int("postfix_reinject_port_incoming", 10026)?,
            filtermail_host: p.string("filtermail_host", "127.0.0.1"),
            postfix_host: p.string("postfix_host", "127.0.0.1"),
            filtermail_memory_budget_mb: p.size_mb("filtermail_memory_budget", "256M")?,
            filtermail_max_dkim_signatures: p.int("filtermail_max_dkim_signatures", 5)?,
            metrics_port: p.int("metrics_port", DEFAULT_METRICS_PORT)?,
            metrics_host: p.ip("metrics_host", LOCALHOST)?,
            max_imap_connections: p.int("max_imap_connections", 10_000)?,
            max_smtp_connections: p.int("max_smtp_connections", 1_000)?,
            imap_compress: p
                .string("imap_compress", "false")
                .eq_ignore_ascii_case("true"),
            turn_socket_path: p
                .string("turn_socket_path", "/run/chatmail-turn/turn.socket")
                .into(),
            iroh_relay,
            enable_iroh_relay,
            max_load_1m: p.float("max_load_1m", 5.0)?,
            min_available_memory_mb: p.size_mb("min_available_memory", "200M")?,
            min_free_disk_space_mb: p.size_mb("min_free_disk_space", "1G")?,
            tls_cert_mode: tls.mode,
            tls_cert_path: tls.cert,
            tls_key_path: tls.key,
            mailboxes_dir: p
                .string(
                    "mailboxes_dir",
                    &format!("/home/vmail/mail/{}", domain.bare),
                )
                .into(),
            passdb_path: p.string("passdb_path", "/home/vmail/passdb.sqlite").into(),
            notification_url: p.string("notification_url", DEFAULT_NOTIFICATION_URL),
            appversions_path: p.get("appversions_path").map(|(_, v)| PathBuf::from(v)),
            max_queued_notifications: p
                .int("max_queued_notifications", DEFAULT_MAX_QUEUED_NOTIFICATIONS)?,
            password_scheme,
            mail_domain: domain.mail_domain,
            mail_domain_bare: domain.bare,
            ipv4_relay: domain.ipv4_relay,
            postfix_myhostname: domain.postfix_myhostname,
            unused_keys: Vec::new(),
        })
    }
}

/// Deploy-only keys (SPEC §1.2) no service and no template reads: read so they are not
/// "unused". (The connection limits and `imap_compress` are typed fields: the relay's
/// Postfix and Dovecot configuration is rendered from them.)
fn check_deploy_keys(p: &mut Reader<'_>) {
    for key in [
        "www_folder",
        "mtail_address",
        "disable_ipv6",
        "imap_rawlog",
        "acme_email",
        "privacy_postal",
        "privacy_mail",
        "privacy_pdo",
        "privacy_supervisor",
    ] {
        p.get(key);
    }
}

/// The keys of `params` no service read (SPEC §1.4), in file order.
fn unused_keys(params: &Params, used: &[&str]) -> Vec<String> {
    let mut unused: Vec<(usize, String)> = params
        .iter()
        .filter(|(k, _)| !used.contains(&k.as_str()))
        .map(|(k, (line, _))| (*line, k.clone()))
        .collect();
    unused.sort();
    unused.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!(
            "[params]\nmail_domain = chat.example.org\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn defaults_match_reference() {
        let c = cfg("");
        assert_eq!(c.mail_domain, "chat.example.org");
        assert_eq!(c.mail_domain_bare, "chat.example.org");
        assert_eq!(c.postfix_myhostname, "chat.example.org");
        assert_eq!(c.ipv4_relay, None);
        assert_eq!(c.max_user_send_per_minute, 60);
        assert_eq!(c.max_user_send_burst_size, 10);
        assert_eq!(c.max_mailbox_size, "500M");
        assert_eq!(c.max_mailbox_size_mb, 500);
        assert_eq!(c.max_message_size, 31_457_280);
        assert_eq!(c.delete_mails_after, 20);
        assert_eq!(c.delete_large_after, 7);
        assert_eq!(c.delete_inactive_users_after, 90);
        assert_eq!(c.username_min_length, 9);
        assert_eq!(c.username_max_length, 9);
        assert_eq!(c.password_min_length, 9);
        assert_eq!(c.filtermail_smtp_port, 10080);
        assert_eq!(c.filtermail_smtp_port_incoming, 10081);
        assert_eq!(c.filtermail_http_port_incoming, 10082);
        assert_eq!(c.filtermail_lmtp_port_transport, 10083);
        assert_eq!(c.doveauth_http_port, 10084);
        assert_eq!(c.postfix_reinject_port, 10025);
        assert_eq!(c.postfix_reinject_port_incoming, 10026);
        assert_eq!(c.filtermail_host, "127.0.0.1");
        assert_eq!(c.filtermail_memory_budget_mb, 256);
        assert_eq!(c.filtermail_memory_budget_bytes(), 256 * 1024 * 1024);
        assert_eq!(c.filtermail_max_dkim_signatures, 5);
        assert_eq!(c.postfix_host, "127.0.0.1");
        assert_eq!(c.metrics_port, 10089);
        assert_eq!(c.metrics_host.to_string(), "127.0.0.1");
        assert_eq!(c.doveauth_http_host.to_string(), "127.0.0.1");
        assert_eq!(c.max_imap_connections, 10_000);
        assert_eq!(c.max_smtp_connections, 1_000);
        assert!(!c.imap_compress);
        assert_eq!(
            c.turn_socket_path,
            Path::new("/run/chatmail-turn/turn.socket")
        );
        assert_eq!(c.iroh_relay, "https://chat.example.org");
        assert!(c.enable_iroh_relay);
        assert_eq!(c.max_load_1m, 5.0);
        assert_eq!(c.min_available_memory_mb, 200);
        assert_eq!(c.min_free_disk_space_mb, 1024);
        assert_eq!(c.tls_cert_mode, TlsCertMode::Acme);
        assert_eq!(
            c.tls_cert_path,
            Path::new("/var/lib/acme/live/chat.example.org/fullchain")
        );
        assert_eq!(
            c.mailboxes_dir,
            Path::new("/home/vmail/mail/chat.example.org")
        );
        assert_eq!(c.passdb_path, Path::new("/home/vmail/passdb.sqlite"));
        assert_eq!(c.notification_url, DEFAULT_NOTIFICATION_URL);
        assert_eq!(c.max_queued_notifications, 100_000);
        assert_eq!(c.password_scheme, PasswordScheme::Sha512Crypt);
        assert_eq!(c.tombstone_days, 365);
        assert_eq!(c.max_creations_per_minute, 0, "no cap, as the reference");
        assert_eq!(c.max_creations_per_minute_total, 0);
        assert_eq!(c.nocreate_file, Path::new("/etc/chatmail-nocreate"));
        assert!(c.unused_keys.is_empty());
    }

    #[test]
    fn registry_keys() {
        assert_eq!(
            cfg("delete_inactive_users_after = 400\n").tombstone_days,
            400,
            "the default tombstone outlives the inactivity period"
        );
        let c = cfg("tombstone_days = 0\nmax_creations_per_minute = 0\nnocreate_file = /x/n\n");
        assert_eq!(c.tombstone_days, 0);
        assert_eq!(c.max_creations_per_minute, 0);
        assert_eq!(c.nocreate_file, Path::new("/x/n"));
        let c = cfg("max_creations_per_minute = 6\n");
        assert_eq!(
            (c.max_creations_per_minute, c.max_creations_per_minute_total),
            (6, 60),
            "the relay-wide ceiling defaults to ten times the per-client cap"
        );
        let c = cfg("max_creations_per_minute = 6\nmax_creations_per_minute_total = 7\n");
        assert_eq!(c.max_creations_per_minute_total, 7);
        let c = cfg("max_creations_per_minute_total = 50\n");
        assert_eq!(
            (c.max_creations_per_minute, c.max_creations_per_minute_total),
            (0, 50)
        );
        for bad in [
            "tombstone_days = -1",
            "tombstone_days = soon",
            "max_creations_per_minute = 5000000000",
            "max_creations_per_minute_total = -3",
        ] {
            let err = Config::parse(&format!("[params]\nmail_domain = x\n{bad}\n")).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn ipv4_domain_is_bracketed() {
        let c = Config::parse("[params]\nmail_domain = 1.3.3.7\n").unwrap();
        assert_eq!(c.mail_domain, "[1.3.3.7]");
        assert_eq!(c.mail_domain_bare, "1.3.3.7");
        assert_eq!(c.postfix_myhostname, "7.3.3.1.in-addr.arpa");
        assert_eq!(c.mailboxes_dir, Path::new("/home/vmail/mail/1.3.3.7"));
        assert_eq!(c.tls_cert_mode, TlsCertMode::SelfSigned);
        assert_eq!(c.iroh_relay, "https://1.3.3.7");
    }

    #[test]
    fn strict_ipv4() {
        for (s, ok) in [
            ("1.2.3.4", true),
            ("255.255.255.255", true),
            ("01.2.3.4", false),
            ("256.1.1.1", false),
            ("1.2.3", false),
            ("1.2.3.4.5", false),
            ("a.b.c.d", false),
            ("1.2.3.", false),
        ] {
            assert_eq!(parse_strict_ipv4(s).is_some(), ok, "{s}");
        }
    }

    #[test]
    fn sizes() {
        for (s, mb) in [
            ("500M", Some(500)),
            ("2G", Some(2048)),
            ("  1g ", Some(1024)),
            ("100MB", Some(100)),
            ("256", Some(256)),
            ("1.5G", None),
            ("10K", None),
            ("", None),
            ("M", None),
        ] {
            assert_eq!(parse_size_mb(s), mb, "{s:?}");
        }
    }

    #[test]
    fn deploy_keys_the_relay_configuration_reads() {
        let c =
            cfg("max_imap_connections = 1_000\nmax_smtp_connections = 100\nimap_compress = True\n");
        assert_eq!(
            (c.max_imap_connections, c.max_smtp_connections),
            (1000, 100)
        );
        assert!(c.imap_compress);
        assert!(!cfg("imap_compress = yes\n").imap_compress);
        assert!(c.unused_keys.is_empty(), "{:?}", c.unused_keys);
    }

    #[test]
    fn underscore_domain_is_self_signed_and_external_wins() {
        assert_eq!(
            Config::parse("[params]\nmail_domain=_t.x\n")
                .unwrap()
                .tls_cert_mode
                .name(),
            "self"
        );
        let c = cfg("tls_external_cert_and_key = /a/c.pem   /a/k.pem\n");
        assert_eq!(
            c.tls_cert_mode,
            TlsCertMode::External {
                cert: "/a/c.pem".into(),
                key: "/a/k.pem".into()
            }
        );
        let err = Config::parse("[params]\nmail_domain=x.org\ntls_external_cert_and_key = /one\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("two space-separated paths"),
            "{err}"
        );
    }

    #[test]
    fn iroh_relay_present_disables_own() {
        let c = cfg("iroh_relay = https://iroh.example.org \n");
        assert_eq!(c.iroh_relay, "https://iroh.example.org");
        assert!(!c.enable_iroh_relay);
        let c = cfg("iroh_relay =\n");
        assert_eq!(c.iroh_relay, "");
    }

    #[test]
    fn errors_name_line_key_and_value() {
        let err =
            Config::parse("[params]\nmail_domain = x.org\nmax_user_send_per_minute = 60 # x\n")
                .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("max_user_send_per_minute"), "{text}");
        assert!(text.contains("60 # x"), "{text}");
        assert_eq!(err.exit_code(), 78);

        for bad in [
            "[params]\n",
            "mail_domain = x\n",
            "[params]\nmail_domain = x\nmail_domain = y\n",
            "[params]\nmail_domain = x\n[params]\n",
            "[params]\nmail_domain = x\nmax_mailbox_size = 1.5G\n",
            "[params]\nmail_domain = x\nmax_load_1m = high\n",
            "[params]\nmail_domain = x\nfiltermail_smtp_port = 70000\n",
            "[params]\nmail_domain = x\nmax_imap_connections = many\n",
            "[params]\nmail_domain = x\nno separator here\n",
            "[params]\nmail_domain = x\npassword_scheme = md5\n",
            "[params]\nmail_domain = x\nmetrics_host = localhost\n",
            "[params]\nmail_domain = x\ndoveauth_http_host = 127.0.0.300\n",
            "  continuation first\n[params]\nmail_domain = x\n",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ini_syntax() {
        let text = "\u{feff}# comment\n; other\n[other]\nmail_domain = ignored\n[params] # note\r\nmail_domain: x.org\r\nwww_folder = a\n  b\nfoo = bar\nbaz:qux=1\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.mail_domain, "x.org");
        let raw = |key: &str| parse_ini(text).unwrap()["params"][key].1.clone();
        assert_eq!(raw("www_folder"), "a\nb");
        assert_eq!(raw("baz"), "qux=1");
        assert_eq!(c.unused_keys, vec!["foo".to_owned(), "baz".to_owned()]);
    }

    #[test]
    fn python_int_forms() {
        let c = cfg("max_message_size =  1_000 \nusername_max_length = +12\n");
        assert_eq!(c.max_message_size, 1000);
        assert_eq!(c.username_max_length, 12);
        assert!(Config::parse("[params]\nmail_domain=x\nmax_message_size = -1\n").is_err());
    }

    #[test]
    fn load_reports_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chatmail.ini");
        std::fs::write(
            &p,
            "[params]\nmail_domain = x.org\ndelete_mails_after = soon\n",
        )
        .unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(
            err.contains("chatmail.ini") && err.contains("line 3"),
            "{err}"
        );
        assert!(Config::load(dir.path().join("missing.ini")).is_err());
    }
}
