//! The real `chatmail-render` binary on scratch state directories: chatmail.ini as the
//! services read it reaches every server's configuration, defaults included; every
//! template of `relay/` renders for every Dovecot series and auth mode; bad input fails
//! with a clear message and the right exit status.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chatmail_render::repo_templates;
use chatmail_render::{Auth, Dovecot, Layout, Relay};
use chatmaild::Config;

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-render");

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// chatmail-render on this state directory, with `args` before the command words.
    fn run(&self, args: &[&str]) -> Output {
        let root = self.dir.path();
        Command::new(BIN)
            .arg("--state")
            .arg(self.state())
            .arg("--run")
            .arg(root.join("run"))
            .arg("--socket-root")
            .arg(root.join("sockets"))
            .arg("--templates")
            .arg(repo_templates())
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.state().join(file)).unwrap()
    }

    fn ini(&self) -> PathBuf {
        self.state().join("chatmail.ini")
    }

    /// The local relay's chatmail.ini with `key`'s line taken out (the services' default
    /// applies then).
    fn drop_key(&self, key: &str) {
        let text = std::fs::read_to_string(self.ini()).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| l.split('=').next().map(str::trim) != Some(key))
            .collect();
        std::fs::write(self.ini(), kept.join("\n")).unwrap();
    }
}

/// `setting = value` lines of a rendered file, by setting (the last one wins).
fn settings(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn max_message_size_reaches_postfix_and_both_dovecots() {
    let s = Scratch::new();
    s.ok(&["ini", "--set", "max_message_size=12345678"]);
    for (version, key) in [
        ("2.3.19", "quota_max_mail_size"),
        ("2.4.1", "quota_mail_size"),
    ] {
        s.ok(&["--dovecot", version, "render"]);
        assert_eq!(
            settings(&s.read("postfix/main.cf"))["message_size_limit"],
            "12345678"
        );
        assert_eq!(
            settings(&s.read("dovecot/dovecot.conf"))[key],
            "12345678",
            "{version}"
        );
    }

    // Without the key the services' default applies, whatever chatmaild::config makes it.
    s.drop_key("max_message_size");
    let default = Config::parse("[params]\nmail_domain = x\n")
        .unwrap()
        .max_message_size
        .to_string();
    s.ok(&["--dovecot", "2.3.19", "render"]);
    assert_eq!(
        settings(&s.read("postfix/main.cf"))["message_size_limit"],
        default
    );
    assert_eq!(
        settings(&s.read("dovecot/dovecot.conf"))["quota_max_mail_size"],
        default
    );
}

#[test]
fn other_keys_and_derived_values_reach_the_servers() {
    let s = Scratch::new();
    s.ok(&[
        "ini",
        "--set",
        "max_mailbox_size=2G",
        "--set",
        "max_smtp_connections=50",
        "--set",
        "filtermail_smtp_port=20080",
        "--set",
        "imap_compress=true",
    ]);
    s.ok(&["--dovecot", "2.3.19", "render"]);
    let dovecot = s.read("dovecot/dovecot.conf");
    assert!(
        dovecot.contains("quota_rule = *:storage=2048M"),
        "{dovecot}"
    );
    // chatmail-quota-expire's target: 70 % of the quota.
    assert!(dovecot.contains("quota-warning 1433 "), "{dovecot}");
    assert!(dovecot.contains("imap_zlib"), "{dovecot}");
    let master = s.read("postfix/master.cf");
    assert!(
        master.contains("smtpd_proxy_filter=127.0.0.1:20080"),
        "{master}"
    );
    assert!(
        master.contains("smtpd_client_connection_count_limit=10"),
        "{master}"
    );
    // An IP relay has no DKIM key: no milter on the reinjection port.
    assert!(!master.contains("opendkim"), "{master}");
    // 2.4 has no IMAP COMPRESS.
    s.ok(&["--dovecot", "2.4.1", "render"]);
    assert!(!s.read("dovecot/dovecot.conf").contains("imap_zlib"));
}

#[test]
fn every_template_renders_for_every_series_and_auth() {
    let s = Scratch::new();
    s.ok(&["ini"]);
    for (dovecot, auths) in [
        (Dovecot::V23, &[Auth::Lua, Auth::Dict][..]),
        (Dovecot::V24, &[Auth::Lua]),
    ] {
        for &auth in auths {
            let layout = Layout::new(
                s.state(),
                s.dir.path().join("run"),
                s.dir.path().join("sockets"),
            );
            let relay = Relay::load(layout, dovecot, auth, "0").unwrap();
            let rendered = relay.render(&repo_templates()).unwrap();
            assert_eq!(rendered.len(), relay.outputs().len());
            for r in rendered {
                // No placeholder is left, and none is filled with an empty line.
                assert!(
                    !r.text.contains("@MAIL_DOMAIN@") && !r.text.contains("@@"),
                    "{}",
                    r.target.display()
                );
            }
        }
    }
}

#[test]
fn vars_paths_and_daemons_are_lines_a_script_reads() {
    let s = Scratch::new();
    s.ok(&["ini"]);
    let vars = s.ok(&["--dovecot", "2.3.19", "vars"]);
    let map: BTreeMap<&str, &str> = vars.lines().map(|l| l.split_once('=').unwrap()).collect();
    assert_eq!(map.len(), vars.lines().count(), "names are unique");
    assert_eq!(map["MAIL_DOMAIN"], "[127.0.0.1]");
    assert_eq!(map["IPV4_RELAY"], "127.0.0.1");
    assert_eq!(map["MAX_MESSAGE_SIZE"], "31457280");
    assert_eq!(map["PASSWORD_VARIABLE"], "%w");
    assert_eq!(
        Path::new(map["INI"]),
        s.ini(),
        "the configuration is read from the state directory"
    );
    let paths = s.ok(&["paths"]);
    for line in paths.lines() {
        let (name, value) = line.split_once('=').unwrap();
        assert_eq!(map[name], value, "paths and vars agree on {name}");
    }
    let daemons = s.ok(&["daemons"]);
    let first = daemons.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "doveauth\t{}",
            s.dir
                .path()
                .join("sockets/doveauth/metrics.socket")
                .display()
        )
    );
    assert!(daemons.contains("chatmail-exporter\t-\n"), "{daemons}");
}

#[test]
fn bad_input_fails_clearly() {
    let s = Scratch::new();
    // No chatmail.ini yet.
    let out = s.run(&["--dovecot", "2.3.19", "vars"]);
    assert_eq!(out.status.code(), Some(1));
    // A bad value is refused when the ini is written, naming the file, line and key.
    let out = s.run(&["ini", "--set", "max_message_size=30M"]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chatmail.ini") && err.contains("max_message_size"),
        "{err}"
    );
    assert!(!s.ini().exists());
    // Not a setting at all.
    assert_eq!(s.run(&["ini", "--set", "novalue"]).status.code(), Some(64));
    s.ok(&["ini"]);
    // dict auth on Dovecot 2.4.
    let out = s.run(&["--dovecot", "2.4.1", "--auth", "dict", "render"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dict auth needs Dovecot 2.3"));
    // An unsupported Dovecot.
    let out = s.run(&["--dovecot", "2.2.36", "render"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!s.state().join("postfix/main.cf").exists());
}

#[test]
fn an_unknown_placeholder_fails_the_rendering() {
    let s = Scratch::new();
    s.ok(&["ini"]);
    // A copy of relay/ with a typo in one template.
    let templates = s.dir.path().join("templates");
    copy_dir(&repo_templates(), &templates);
    let main = templates.join("postfix/main.cf.in");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        text.replace("@MAX_MESSAGE_SIZE@", "@MAX_MESAGE_SIZE@"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--state")
        .arg(s.state())
        .args(["--run", "/nonexistent/run", "--socket-root", "/nonexistent"])
        .arg("--templates")
        .arg(&templates)
        .args(["--dovecot", "2.3.19", "render"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("main.cf.in: no value for placeholder @MAX_MESAGE_SIZE@"),
        "{err}"
    );
    // Nothing is written when a template fails.
    assert!(!s.state().join("postfix").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn relay_two_listens_on_its_own_address_only() {
    let s = Scratch::new();
    s.ok(&["--instance", "2", "ini"]);
    let ini = Config::load(s.ini()).unwrap();
    assert_eq!(ini.mail_domain, "[127.0.0.2]");
    assert_eq!(ini.filtermail_host, "127.0.0.2");
    assert_eq!(ini.postfix_host, "127.0.0.2");
    assert_eq!(ini.doveauth_http_host.to_string(), "127.0.0.2");
    assert_eq!(ini.metrics_host.to_string(), "127.0.0.2");
    let vars = s.ok(&["--instance", "2", "--dovecot", "2.3.19", "vars"]);
    assert!(vars.contains("\nLISTEN=127.0.0.2\n"), "{vars}");
    assert!(
        vars.contains("\nDOVECOT_INSTANCE=chatmail-local-2\n"),
        "{vars}"
    );
    for dovecot in ["2.3.19", "2.4.1"] {
        s.ok(&["--instance", "2", "--dovecot", dovecot, "render"]);
        let main = s.read("postfix/main.cf");
        let master = s.read("postfix/master.cf");
        let nginx = s.read("nginx/nginx.conf");
        let lua = s.read("dovecot/auth.lua");
        let dovecot_conf = s.read("dovecot/dovecot.conf");
        assert!(main.contains("\ninet_interfaces = 127.0.0.2\n"), "{main}");
        assert!(
            main.contains("default_transport = lmtp-filtermail:inet:[127.0.0.2]:10083"),
            "{main}"
        );
        assert!(main.contains("\nmydestination = [127.0.0.2]\n"), "{main}");
        for listener in [
            "\n127.0.0.2:10025 inet",
            "\n127.0.0.2:10026 inet",
            "smtpd_proxy_filter=127.0.0.2:10080",
            "smtpd_proxy_filter=127.0.0.2:10081",
        ] {
            assert!(master.contains(listener), "{listener}: {master}");
        }
        assert!(nginx.contains("listen 127.0.0.2:443 ssl"), "{nginx}");
        assert!(
            nginx.contains("proxy_pass http://127.0.0.2:10082;"),
            "{nginx}"
        );
        assert!(lua.contains("\"http://127.0.0.2:10084/create\""), "{lua}");
        assert!(dovecot_conf.contains("127.0.0.2"), "{dovecot_conf}");
        // Nothing of relay 2 names relay 1's address.
        for (name, text) in [
            ("main.cf", &main),
            ("master.cf", &master),
            ("nginx.conf", &nginx),
            ("auth.lua", &lua),
            ("dovecot.conf", &dovecot_conf),
        ] {
            assert!(!text.contains("127.0.0.1"), "{name} names 127.0.0.1");
        }
    }
}

#[test]
fn relay_one_keeps_the_loopback_defaults() {
    let s = Scratch::new();
    s.ok(&["ini"]);
    let ini = Config::load(s.ini()).unwrap();
    assert_eq!(ini.mail_domain, "[127.0.0.1]");
    assert_eq!(ini.filtermail_host, "127.0.0.1");
    assert_eq!(ini.metrics_host.to_string(), "127.0.0.1");
    s.ok(&["--dovecot", "2.3.19", "render"]);
    let nginx = s.read("nginx/nginx.conf");
    assert!(nginx.contains("listen 127.0.0.1:443 ssl"), "{nginx}");
    assert!(nginx.contains("location /mxdeliv {"), "{nginx}");
    assert!(
        nginx.contains("proxy_pass http://127.0.0.1:10082;"),
        "{nginx}"
    );
    assert!(
        s.read("dovecot/dovecot.conf")
            .contains("instance_name = chatmail-local\n")
    );
}
