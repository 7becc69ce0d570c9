//! Transcript tests: raw dict requests to the real binary, exact reply bytes.

mod common;

use common::*;
use std::fs;
use tokio::io::AsyncWriteExt;

const SHARED: &str = "shared/0123/vendor/vendor.dovecot/pvt/server/vendor/deltachat/";

fn service(extra: &str) -> Service {
    // Nothing listens there: these tests never reach the notification service.
    Service::new(&format!("http://127.0.0.1:{}/notify", closed_port()), extra)
}

#[tokio::test]
async fn set_then_get_device_token() {
    let mut s = service("");
    s.start();
    let before = now();
    let reply = s
        .transcript(
            b"HELLO\nBtx00\tuser@example.org\nStx00\tpriv/guid00/devicetoken\t01234\nCtx00\n",
        )
        .await;
    assert_eq!(reply, b"O\n");
    let json = s.metadata_json(USER);
    let ts: i64 = json
        .strip_prefix(r#"{"devicetoken": {"01234": "#)
        .and_then(|r| r.strip_suffix("}}"))
        .unwrap_or_else(|| panic!("{json}"))
        .parse()
        .unwrap();
    assert!(ts >= before && ts <= now());
    assert!(s.vmail.join(USER).join("metadata.json.lock").exists());
    assert_eq!(
        s.transcript(b"HELLO\nLpriv/0123/devicetoken\tuser@example.org\n")
            .await,
        b"O01234\n"
    );
    s.set_token(USER, "56789").await;
    s.set_token(USER, "01234").await;
    assert_eq!(
        s.tokens(USER).await,
        b"O01234 56789\n",
        "insertion order kept"
    );
    assert_eq!(s.tokens("other@example.org").await, b"O\n");
}

#[tokio::test]
async fn pipelined_requests_on_one_connection() {
    let mut s = service("");
    s.start();
    let reply = s
        .transcript(
            b"H3\t2\t0\t\tmetadata\nB1\ta@example.org\nS1\tpriv/g/devicetoken\tt1\nC1\n\
              Lpriv/g/devicetoken\ta@example.org\nB2\ta@example.org\nS2\tpriv/g/other\tx\nC2\n\
              I9\t0\tpriv/5cbe730f146fea6535be0d003dd4fc98/\ta@example.org\nC99\n",
        )
        .await;
    assert_eq!(reply, b"O\nOt1\nF\n\nF\n");
}

#[tokio::test]
async fn legacy_file_is_migrated_and_expired_tokens_dropped() {
    let mut s = service("");
    let dir = s.vmail.join(USER);
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("metadata.json"),
        r#"{"devicetoken": ["oldtoken1", "oldtoken2"], "x": {"keep": 1}}"#,
    )
    .unwrap();
    fs::create_dir(s.vmail.join("b@example.org")).unwrap();
    fs::write(
        s.vmail.join("b@example.org/metadata.json"),
        format!(r#"{{"devicetoken": {{"old": 1000, "new": {}}}}}"#, now()),
    )
    .unwrap();
    s.start();
    assert_eq!(s.tokens(USER).await, b"Ooldtoken1 oldtoken2\n");
    let json = s.metadata_json(USER);
    assert!(
        json.starts_with(r#"{"devicetoken": {"oldtoken1": "#),
        "{json}"
    );
    assert!(json.ends_with(r#"}, "x": {"keep": 1}}"#), "{json}");
    assert_eq!(s.tokens("b@example.org").await, b"Onew\n");
    assert!(!s.metadata_json("b@example.org").contains("old"));
}

#[tokio::test]
async fn shared_keys() {
    let mut s = service("");
    s.start();
    for (suffix, want) in [
        ("irohrelay", &b"Ohttps://example.org\n"[..]),
        ("maxsmtprecipients", b"O1000\n"),
        ("unknown", b"N\n"),
        ("turn", b"N\n"),
    ] {
        let req = format!("H\nL{SHARED}{suffix}\tuser@example.org\n");
        assert_eq!(s.transcript(req.as_bytes()).await, want, "{suffix}");
    }
    let wrong =
        b"Lshared/0123/vendor/vendor.dovecot/pvt/server/wrong/prefix/key\tuser@example.org\n";
    assert_eq!(s.transcript(wrong).await, b"N\n");
    let reply = s
        .transcript(format!("L{SHARED}appversions\tuser@example.org\n").as_bytes())
        .await;
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.starts_with(r#"O{"clients":[{"clientId":"deltachat","#),
        "{text}"
    );
    assert_eq!(text.matches('\n').count(), 1);
    assert!(!text.contains(' '));
}

#[tokio::test]
async fn iroh_relay_configured_and_empty() {
    let mut s = service("iroh_relay = https://iroh.example.org/");
    s.start();
    let req = format!("L{SHARED}irohrelay\tu@example.org\n");
    assert_eq!(
        s.transcript(req.as_bytes()).await,
        b"Ohttps://iroh.example.org/\n"
    );
    let mut s = service("iroh_relay =");
    s.start();
    assert_eq!(s.transcript(req.as_bytes()).await, b"N\n");
}

#[tokio::test]
async fn operator_appversions_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("appversions.json");
    let mut s = service(&format!("appversions_path = {}", p.display()));
    s.start();
    let req = format!("L{SHARED}appversions\tu@example.org\n");
    assert_eq!(s.transcript(req.as_bytes()).await, b"N\n", "missing file");
    fs::write(
        &p,
        "{\n  \"clients\": [],\n  \"n\u{e4}me\": \"\u{1f600}\"\n}",
    )
    .unwrap();
    assert_eq!(
        s.transcript(req.as_bytes()).await,
        b"O{\"clients\":[],\"n\\u00e4me\":\"\\ud83d\\ude00\"}\n"
    );
    fs::write(&p, "bad json").unwrap();
    assert_eq!(s.transcript(req.as_bytes()).await, b"N\n");
}

#[tokio::test]
async fn turn_credentials_from_socket() {
    let mut s = service("");
    let turn = tokio::net::UnixListener::bind(s.dir.path().join("turn.socket")).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = turn.accept().await.unwrap();
            c.write_all(b"user:pass\n").await.unwrap();
        }
    });
    s.start();
    let req = format!("L{SHARED}turn\tu@example.org\n");
    assert_eq!(
        s.transcript(req.as_bytes()).await,
        b"Oexample.org:3478:user:pass\n"
    );
}

#[tokio::test]
async fn bad_users_and_keys_never_drop_the_connection() {
    let mut s = service("");
    s.start();
    let reply = s
        .transcript(
            b"Lpriv/0123/devicetoken\n\
              Lpriv/0123/devicetoken\t../../etc@x/y\n\
              Lpriv/0123/chatmail\tuser@example.org\n\
              B1\t../evil/x\nS1\tpriv/g/devicetoken\tt\nC1\n\
              B2\nS2\tpriv/g/devicetoken\tt\nC2\n\
              B3\tuser@example.org\nS3\tpriv/g/devicetoken/extra\tt\nC3\n\
              B4\tuser@example.org\nS4\tpriv/g/messagenew\nC4\n\
              Lpriv/0123/devicetoken\tuser@example.org\n",
        )
        .await;
    assert_eq!(reply, b"N\nN\nN\nF\nF\nF\nO\nO\n");
    let mut names: Vec<_> = fs::read_dir(&s.vmail)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["pending_notifications"], "no path from bad input");
}

#[tokio::test]
async fn non_ascii_token_is_escaped_in_reply() {
    let mut s = service("");
    s.start();
    s.set_token(USER, "t\u{f6}k").await;
    assert_eq!(
        s.metadata_json(USER).split('"').nth(3).unwrap(),
        "t\\u00f6k"
    );
    assert_eq!(s.tokens(USER).await, "Ot\u{f6}k\n".as_bytes());
}

#[test]
fn missing_mailboxes_dir_exits_1() {
    let s = service("");
    fs::remove_dir(&s.vmail).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatmail-metadata"))
        .arg(&s.socket)
        .arg(&s.ini)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("vmail dir does not exist: {}", s.vmail.display())),
        "{err}"
    );
    assert!(!s.socket.exists());
}

#[test]
fn usage_errors_exit_64() {
    for args in [&[][..], &["one"], &["a", "b", "c"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatmail-metadata"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    }
}

#[test]
fn bad_config_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("c.ini");
    fs::write(&ini, "[params]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatmail-metadata"))
        .arg(dir.path().join("s"))
        .arg(&ini)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_keeps_the_queue() {
    let mut s = service("");
    s.start();
    s.set_token(USER, "t").await;
    s.message_new(USER).await;
    assert_eq!(s.queue_files().len(), 1);
    let status = s.terminate();
    assert_eq!(status.code(), Some(0), "{}", s.log());
    assert_eq!(s.queue_files().len(), 1, "undelivered item stays queued");
}

#[tokio::test]
async fn over_long_token_fails_the_commit_with_a_log_line() {
    let mut s = service("");
    s.start();
    s.set_token(USER, "short").await;
    let before = s.metadata_json(USER);
    let long = "x".repeat(chatmail_metadata::MAX_TOKEN_LEN + 1);
    let req = format!("B1\t{USER}\nS1\tpriv/guid00/devicetoken\t{long}\nC1\n");
    assert_eq!(s.transcript(req.as_bytes()).await, b"F\n");
    s.wait_log("device token of 4097 bytes refused");
    assert_eq!(s.metadata_json(USER), before, "file unchanged");
    // The longest allowed token, and one of the size Delta Chat sends, are kept.
    let max = "y".repeat(chatmail_metadata::MAX_TOKEN_LEN);
    s.set_token(USER, &max).await;
    let delta = format!("openpgp:{}", "Q".repeat(912));
    s.set_token(USER, &delta).await;
    assert_eq!(
        s.tokens(USER).await,
        format!("Oshort {max} {delta}\n").into_bytes()
    );
    // The connection that failed serves the next request.
    let req = format!(
        "B1\t{USER}\nS1\tpriv/guid00/devicetoken\t{long}\nC1\nLpriv/0123/devicetoken\t{USER}\n"
    );
    let reply = s.transcript(req.as_bytes()).await;
    assert!(
        reply.starts_with(b"F\nOshort "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}
