//! The account state (blocked accounts, tombstones, registration mode, invitations, the
//! creation rate cap) as the doveauth binary enforces it, over its real unix socket. The
//! state is written with `chatmaild::registry`, the code `chatmail-admin` uses.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

mod support;

use chatmaild::registry::{RegistrationMode, Registry};
use chatmaild::{Config, User};
use support::{Daemon, passdb, passdb_from};

const BIN: &str = env!("CARGO_BIN_EXE_doveauth");
const DOMAIN: &str = "chat.example.org";

/// A daemon whose nocreate flag file lives in its temporary directory.
fn start(extra: &str) -> (Daemon, Config, Registry) {
    let d = Daemon::start_with(BIN, DOMAIN, |dir| {
        format!(
            "nocreate_file = {}\n{extra}",
            dir.join("nocreate").display()
        )
    });
    let config = Config::load(&d.ini).unwrap();
    let registry = Registry::new(&config);
    (d, config, registry)
}

fn addr(local: &str) -> String {
    format!("{local}@{DOMAIN}")
}

fn userdb(a: &str) -> String {
    format!("Lshared/userdb/{a}\t{a}")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn stored(config: &Config, a: &str) -> Option<String> {
    User::new(config, a).unwrap().password().unwrap()
}

#[test]
fn blocked_account_is_unknown_and_keeps_its_data() {
    let (d, config, _) = start("");
    let mut c = d.client();
    let a = addr("blockedaa");
    assert!(c.ask(&passdb("secret-password", &a)).starts_with('O'));
    let user = User::new(&config, &a).unwrap();
    block(&user, true);
    assert_eq!(c.ask(&passdb("secret-password", &a)), "N\n", "no login");
    assert_eq!(c.ask(&userdb(&a)), "N\n", "no delivery (LMTP asks userdb)");
    assert!(user.password().unwrap().is_some(), "data stays");
    assert_eq!(
        c.ask(&passdb("other-password", &a)),
        "N\n",
        "not re-created with another password"
    );
    block(&user, false);
    assert!(c.ask(&passdb("secret-password", &a)).starts_with('O'));
    assert!(c.ask(&userdb(&a)).starts_with('O'));
}

/// Blocks or unblocks as `chatmail-admin` does: the marker, then a new ctime of the
/// password file.
fn block(user: &User, blocked: bool) {
    if blocked {
        std::fs::write(user.blocked_path(), b"").unwrap();
    } else {
        std::fs::remove_file(user.blocked_path()).unwrap();
    }
    let perms = std::fs::metadata(user.password_path())
        .unwrap()
        .permissions();
    std::fs::set_permissions(user.password_path(), perms).unwrap();
}

#[test]
fn tombstoned_address_is_not_registered_again_until_the_tombstone_ends() {
    let (d, config, registry) = start("");
    let mut c = d.client();
    let a = addr("tombstone");
    assert!(c.ask(&passdb("old-password", &a)).starts_with('O'));
    registry.write_tombstone(&a, now()).unwrap();
    std::fs::remove_dir_all(User::new(&config, &a).unwrap().maildir()).unwrap();
    for pw in ["old-password", "new-password"] {
        assert_eq!(c.ask(&passdb(pw, &a)), "N\n", "{pw}");
    }
    assert_eq!(stored(&config, &a), None);
    // Once the tombstone has ended the address is free.
    std::fs::write(
        registry.tombstone_path(&a).unwrap(),
        format!("{}\n", now() - 1),
    )
    .unwrap();
    assert!(c.ask(&passdb("new-password", &a)).starts_with('O'));
    let (_, log) = d.stop();
    let lines = log
        .lines()
        .filter(|l| {
            l.contains(&format!(
                "registration rejected: address is tombstoned: {a}"
            ))
        })
        .count();
    assert_eq!(lines, 2, "one line per refusal:\n{log}");
}

#[test]
fn closed_registration_refuses_new_and_keeps_existing() {
    let (d, config, registry) = start("");
    let mut c = d.client();
    let old = addr("existing1");
    assert!(c.ask(&passdb("secret-password", &old)).starts_with('O'));
    registry.set_mode(RegistrationMode::Closed).unwrap();
    assert!(config.nocreate_file.exists());
    assert_eq!(c.ask(&passdb("secret-password", &addr("newcomer1"))), "N\n");
    assert!(c.ask(&passdb("secret-password", &old)).starts_with('O'));
    registry.set_mode(RegistrationMode::Open).unwrap();
    assert!(
        c.ask(&passdb("secret-password", &addr("newcomer1")))
            .starts_with('O')
    );
    let (_, log) = d.stop();
    assert!(log.contains("blocked account creation because"), "{log}");
}

#[test]
fn invitation_creates_exactly_its_number_of_accounts() {
    let (d, config, registry) = start("");
    registry.set_mode(RegistrationMode::InviteOnly).unwrap();
    let mut c = d.client();
    assert_eq!(c.ask(&passdb("secret-password", &addr("noinvite1"))), "N\n");
    let inv = registry.create_invitation(2, None, "two", now()).unwrap();
    let pw = |p: &str| format!("{}:{p}", inv.token);
    assert_eq!(
        c.ask(&passdb(&pw("short"), &addr("shortpass"))),
        "N\n",
        "the part after the token is a password too"
    );
    for (local, secret) in [
        ("invited01", "first-secret"),
        ("invited02", "second-secret"),
    ] {
        let reply = c.ask(&passdb(&pw(secret), &addr(local)));
        assert!(reply.starts_with('O'), "{local}: {reply}");
        // The stored hash is of the whole password the client keeps and sends again.
        let hash = stored(&config, &addr(local)).unwrap();
        let mcf = hash.strip_prefix("{SHA512-CRYPT}").unwrap();
        use sha_crypt::{PasswordVerifier, ShaCrypt};
        assert!(
            ShaCrypt::SHA512
                .verify_password(pw(secret).as_bytes(), mcf)
                .is_ok()
        );
        assert!(c.ask(&passdb(&pw(secret), &addr(local))).starts_with('O'));
    }
    assert_eq!(
        c.ask(&passdb(&pw("third-secret"), &addr("invited03"))),
        "N\n"
    );
    assert_eq!(stored(&config, &addr("invited03")), None);
    assert_eq!(
        registry.invitation(&inv.token).unwrap().unwrap().uses_left,
        0
    );

    let revoked = registry.create_invitation(5, None, "", now()).unwrap();
    registry.revoke_invitation(&revoked.token).unwrap();
    let p = format!("{}:some-secret", revoked.token);
    assert_eq!(
        c.ask(&passdb(&p, &addr("revoked01"))),
        "N\n",
        "revoked at once"
    );
    let (_, log) = d.stop();
    for line in [
        "registration rejected: invitation required",
        "registration rejected: invalid invitation",
        "registration rejected: password after the invitation needs at least 9 characters",
    ] {
        assert!(log.contains(line), "{line}:\n{log}");
    }
}

#[test]
fn creation_rate_is_capped_per_client_under_a_relay_wide_ceiling() {
    let (d, config, _) =
        start("max_creations_per_minute = 2\nmax_creations_per_minute_total = 3\n");
    let mut c = d.client();
    let mut other = d.client();
    for (i, client) in ["192.0.2.1", "192.0.2.1"].into_iter().enumerate() {
        let conn = if i == 1 { &mut other } else { &mut c };
        let reply = conn.ask(&passdb_from(
            "secret-password",
            &addr(&format!("ratecap0{i}")),
            client,
        ));
        assert!(reply.starts_with('O'), "{i}: {reply}");
    }
    // A refusal for now is a failed lookup: Dovecot's temporary failure, not "no such user".
    let over = passdb_from("secret-password", &addr("ratecap03"), "192.0.2.1");
    assert_eq!(c.ask(&over), "F\n", "the client's cap");
    let another = passdb_from("secret-password", &addr("ratecap04"), "192.0.2.2");
    assert!(c.ask(&another).starts_with('O'), "another client");
    let third = passdb_from("secret-password", &addr("ratecap05"), "192.0.2.3");
    assert_eq!(c.ask(&third), "F\n", "the relay-wide ceiling");
    assert_eq!(
        c.ask(&passdb("secret-password", &addr("ratecap06"))),
        "F\n",
        "a key without the client counts against the ceiling"
    );
    for refused in ["ratecap03", "ratecap05", "ratecap06"] {
        assert_eq!(stored(&config, &addr(refused)), None);
        assert!(!d.mailboxes.join(addr(refused)).exists(), "nothing left");
    }
    assert!(
        c.ask(&passdb("secret-password", &addr("ratecap00")))
            .starts_with('O'),
        "existing accounts still log in"
    );
    let (_, log) = d.stop();
    for (line, n) in [
        (
            "registration rejected: more than 2 creations per minute from 192.0.2.1",
            1,
        ),
        (
            "registration rejected: more than 3 creations per minute\n",
            2,
        ),
    ] {
        assert_eq!(log.matches(line).count(), n, "{line}: {log}");
    }
}

#[test]
fn without_a_cap_a_burst_of_first_logins_all_creates() {
    // The reference has no creation cap; neither has a chatmail.ini without the key.
    let (d, config, _) = start("");
    let mut c = d.client();
    for i in 0..100 {
        let a = addr(&format!("burst{i:04}"));
        assert!(
            c.ask(&passdb("secret-password", &a)).starts_with('O'),
            "{i}"
        );
        assert!(stored(&config, &a).is_some());
    }
    let (_, log) = d.stop();
    assert!(!log.contains("creations per minute"), "{log}");
}

#[test]
fn newemail_credentials_of_an_invitation_link_create_the_account() {
    // Dict mode: nothing serves /create, so the CGI hands the credentials out unchecked
    // (a free port, not the default one a relay on this machine may use).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (d, config, registry) = start(&format!("doveauth_http_port = {port}\n"));
    registry.set_mode(RegistrationMode::InviteOnly).unwrap();
    let inv = registry.create_invitation(1, None, "", now()).unwrap();
    let cgi = |query: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatmail-newemail"))
            .env("CHATMAIL_INI", &d.ini)
            .env("QUERY_STRING", query)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let body = text.split_once("\n\n").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        (
            v["email"].as_str().unwrap().to_owned(),
            v["password"].as_str().unwrap().to_owned(),
        )
    };
    let mut c = d.client();
    let (plain_email, plain_pw) = cgi("");
    assert_eq!(
        c.ask(&passdb(&plain_pw, &plain_email)),
        "N\n",
        "no invitation"
    );
    let (email, pw) = cgi(&format!("invite={}", inv.token));
    assert!(pw.starts_with(&format!("{}:", inv.token)));
    assert!(c.ask(&passdb(&pw, &email)).starts_with('O'));
    assert!(stored(&config, &email).is_some());
    let (second, pw2) = cgi(&format!("invite={}", inv.token));
    assert_eq!(c.ask(&passdb(&pw2, &second)), "N\n", "a one-use invitation");
}
