//! A real Dovecot on loopback whose passdb/userdb and last_login plugin point at the
//! workspace's dict services, configured as a chatmail relay configures them (SPEC §3.1,
//! §4, §10.2), in a private directory with its own base_dir. passdb and userdb are the
//! relay's dict templates (`relay/dovecot/auth.conf.in`, `auth-dict.conf.in`), rendered.

use crate::relay_dovecot::{render, repo};
use crate::service::{Service, binary};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Whether this machine's Dovecot is 2.3, the last series with dict passdb/userdb and the
/// configuration language these dict-mode tests write (Debian 12; Debian 13 has 2.4).
pub fn host_dovecot_is_23() -> bool {
    Command::new("dovecot")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"2.3."))
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
        let mailboxes = root.join("mail");
        let run = root.join("svc");
        for d in [&mailboxes, &run] {
            std::fs::create_dir(d).unwrap();
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        }
        let ini = root.join("chatmail.ini");
        std::fs::write(
            &ini,
            format!(
                "[params]\nmail_domain = {domain}\nmailboxes_dir = {}\npassdb_path = {}\nmax_load_1m = 1000\nmin_free_disk_space = 1M\nmin_available_memory = 1M\n{extra_ini}",
                mailboxes.display(),
                root.join("passdb.sqlite").display()
            ),
        )
        .unwrap();
        let auth_socket = run.join("doveauth.socket");
        let lastlogin_socket = run.join("lastlogin.socket");
        let ids = Some((uid, gid));
        let services = vec![
            Service::start_dict(&binary("doveauth", "doveauth"), &auth_socket, &ini, ids),
            Service::start_dict(
                &binary("lastlogin", "lastlogin"),
                &lastlogin_socket,
                &ini,
                ids,
            ),
        ];
        // The relay's own dict auth templates (relay/dovecot/auth*.conf.in), as deployed.
        let values = std::collections::HashMap::from([
            ("DOVEAUTH_SOCKET", auth_socket.display().to_string()),
            ("DOVECOT_CONF_DIR", root.display().to_string()),
        ]);
        let template = |p: &str| std::fs::read_to_string(repo().join(p)).unwrap();
        std::fs::write(
            root.join("auth.conf"),
            render(&template("relay/dovecot/auth.conf.in"), &values),
        )
        .unwrap();
        let auth_blocks = render(&template("relay/dovecot/auth-dict.conf.in"), &values);
        let imap_port = free_port();
        let conf = root.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                r#"protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_chars = abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@[]
auth_username_format = %Lu
auth_cache_size = 0
# Tests fail logins on purpose; no penalty delays for loopback clients.
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:{mailboxes}/%u
mail_uid = vmail
mail_gid = vmail
default_login_user = dovenull
default_internal_user = dovecot
{auth_blocks}
protocol imap {{
  mail_plugins = $mail_plugins last_login
}}
plugin {{
  last_login_dict = proxy:{lastlogin}:lastlogin
  last_login_precision = s
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"#,
                root = root.display(),
                mailboxes = mailboxes.display(),
                lastlogin = lastlogin_socket.display(),
            ),
        )
        .unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .expect("start dovecot (is dovecot-imapd installed?)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", imap_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen; log:\n{}",
                read_log(root)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Dovecot {
            child: Some(child),
            dir,
            conf,
            imap_port,
            mailboxes,
            ini,
            services,
        }
    }

    /// Runs `doveadm -c <conf> ARGS` and returns (success, stdout).
    pub fn doveadm(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("doveadm")
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

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

fn read_log(root: &Path) -> String {
    std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default()
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::support::terminate(child, Duration::from_secs(10));
        }
        self.services.clear();
    }
}
