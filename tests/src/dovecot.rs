//! A real Dovecot 2.3 on loopback whose passdb/userdb and last_login plugin point at the
//! workspace's dict services, in a private directory with its own base_dir: the relay's
//! `relay/dovecot/` templates rendered with dict auth (`auth-dict.conf.in`, `auth.conf.in`),
//! as scripts/relay renders them with `CHATMAIL_RELAY_AUTH=dict` (SPEC §3.1, §4, §10.2).

use crate::dovecot_conf::{Auth, Dovecot as Series23, Instance, Series};
use crate::service::{Service, binary};
use chatmaild::daemons;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// The uid and gid of user `vmail`, creating the system user if it does not exist.
pub fn vmail_ids() -> (u32, u32) {
    if lookup_ids("vmail").is_none() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--home-dir",
                "/home/vmail",
                "--shell",
                "/usr/sbin/nologin",
                "vmail",
            ])
            .status()
            .expect("run useradd");
        assert!(status.success(), "useradd vmail failed");
    }
    lookup_ids("vmail").expect("vmail user")
}

fn lookup_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// Whether this machine's Dovecot is 2.3, the last series with dict passdb/userdb (Debian
/// 12; Debian 13 has 2.4).
pub fn host_dovecot_is_23() -> bool {
    Series23::installed().is_ok_and(Series23::has_dict_passdb)
}

pub use crate::support::free_port;

/// A relay-like test environment: config, mailboxes, dict services and Dovecot.
pub struct Dovecot {
    child: Option<Child>,
    /// The private directory holding everything.
    pub dir: tempfile::TempDir,
    /// The Dovecot config file.
    pub conf: PathBuf,
    /// The IMAP port on 127.0.0.1.
    pub imap_port: u16,
    /// `mailboxes_dir`.
    pub mailboxes: PathBuf,
    /// The `chatmail.ini`.
    pub ini: PathBuf,
    services: Vec<Service>,
    instance: Instance,
}

impl Dovecot {
    /// Writes `chatmail.ini` for `domain` (+ `extra` lines), starts doveauth and lastlogin
    /// as vmail, then Dovecot.
    pub fn start(domain: &str, extra_ini: &str) -> Dovecot {
        let (uid, gid) = vmail_ids();
        let dir = tempfile::Builder::new()
            .prefix("dc")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let instance = Instance::new(Series::Host, root, Auth::Dict, (uid, gid));
        let mailboxes = root.join("mail");
        std::fs::create_dir(&mailboxes).unwrap();
        std::os::unix::fs::chown(&mailboxes, Some(uid), Some(gid)).unwrap();
        let ini = instance.ini();
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = {domain}\nmailboxes_dir = {}\npassdb_path = {}\nmax_load_1m = 1000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\n{extra_ini}",
                mailboxes.display(),
                root.join("passdb.sqlite").display()
            ),
        )
        .unwrap();
        let ids = Some((uid, gid));
        // chatmail-metadata does not run: these tests use no IMAP METADATA.
        let services = vec![
            Service::start_dict(
                &binary("doveauth", "doveauth"),
                &instance.socket(&daemons::DOVEAUTH),
                &ini,
                ids,
            ),
            Service::start_dict(
                &binary("lastlogin", "lastlogin"),
                &instance.socket(&daemons::LASTLOGIN),
                &ini,
                ids,
            ),
        ];
        let child = instance.start();
        Dovecot {
            child: Some(child),
            conf: instance.conf(),
            imap_port: instance.imap_port,
            mailboxes,
            ini,
            services,
            instance,
            dir,
        }
    }

    /// Runs `doveadm -c <conf> ARGS` and returns (success, stdout).
    pub fn doveadm(&self, args: &[&str]) -> (bool, String) {
        self.instance.doveadm(args)
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        self.instance.log()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::support::terminate(child, Duration::from_secs(10));
        }
        self.services.clear();
    }
}
