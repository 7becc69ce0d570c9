//! Black-box tests of lastlogin together with doveauth-created accounts.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: failing loudly is the point"
)]

mod support;

use std::os::unix::fs::MetadataExt;

use support::Daemon;

const BIN: &str = env!("CARGO_BIN_EXE_doveauth");

#[test]
fn lastlogin_binary_sets_the_day() {
    // lastlogin lives in its own package; run it from the shared target dir.
    let bin = std::path::Path::new(BIN).with_file_name("lastlogin");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "lastlogin"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let d = Daemon::start(bin.to_str().unwrap(), "c.org", "");
    let maildir = d.mailboxes.join("u@c.org");
    std::fs::create_dir(&maildir).unwrap();
    std::fs::write(maildir.join("password"), "{SHA512-CRYPT}$6$x").unwrap();
    let mut c = d.client();
    c.send(
        b"H3\t2\t0\tu@c.org\tlastlogin\nB1\tu@c.org\nS1\tshared/last-login/u@c.org\t1700000123\n",
    );
    assert_eq!(c.ask("C1"), "O\n");
    assert_eq!(
        std::fs::metadata(maildir.join("password")).unwrap().mtime(),
        1_699_920_000
    );
    // Unknown user: success, nothing created.
    c.send(b"B2\tx@c.org\nS2\tshared/last-login/nobody@c.org\t1700000123\n");
    assert_eq!(c.ask("C2"), "O\n");
    assert!(!d.mailboxes.join("nobody@c.org").exists());
    // Bad value, bad key, bad address: only that transaction fails.
    for set in [
        "S3\tshared/last-login/u@c.org\tyesterday",
        "S3\tshared/other/u@c.org\t1",
        "S3\tshared/last-login/../x\t1",
        "S3\tshared/last-login\t1",
    ] {
        c.send(format!("B3\tu@c.org\n{set}\n").as_bytes());
        assert_eq!(c.ask("C3"), "F\n", "{set}");
    }
    assert_eq!(c.ask("Lshared/last-login/u@c.org\tu@c.org"), "N\n");
    assert_eq!(c.ask("I0\t0\tshared/last-login/"), "\n");
    c.send(b"B4\tu@c.org\nS4\tshared/last-login/u@c.org\t1800000000\nR4\n");
    assert_eq!(c.ask("C4"), "F\n", "rolled back transaction is gone");
    assert_eq!(
        std::fs::metadata(maildir.join("password")).unwrap().mtime(),
        1_799_971_200,
        "sets are performed on arrival, as the reference does"
    );
}
