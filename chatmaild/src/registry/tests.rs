//! Unit tests of the registry.

use std::fs;

use super::*;

pub(super) fn setup(extra: &str) -> (tempfile::TempDir, Config, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "[params]\nmail_domain = c.org\nmailboxes_dir = {}\nnocreate_file = {}\n{extra}",
        dir.path().join("mail").display(),
        dir.path().join("nocreate").display(),
    ))
    .unwrap();
    let registry = Registry::new(&config);
    (dir, config, registry)
}

pub(super) const NOW: i64 = 1_700_000_000;

#[test]
fn tombstones() {
    let (_dir, config, r) = setup("tombstone_days = 10\n");
    let a = "abcdefghi@c.org";
    assert!(!r.is_tombstoned(a, NOW));
    assert_eq!(r.write_tombstone(a, NOW).unwrap(), Some(NOW + 10 * DAY));
    assert!(r.is_tombstoned(a, NOW + 10 * DAY - 1));
    assert!(!r.is_tombstoned(a, NOW + 10 * DAY));
    assert_eq!(
        fs::read_to_string(r.state_dir().join("tombstones").join(a)).unwrap(),
        format!("{}\n", NOW + 10 * DAY),
        "the format a Lua script reads"
    );
    r.write_tombstone(a, NOW - DAY).unwrap();
    assert_eq!(
        r.tombstone_until(a).unwrap(),
        Some(NOW + 10 * DAY),
        "never shortened"
    );
    fs::write(r.tombstone_path("reserved1@c.org").unwrap(), b"").unwrap();
    assert!(
        r.is_tombstoned("reserved1@c.org", i64::MAX - 1),
        "empty: forever"
    );
    assert_eq!(r.prune_tombstones(NOW + 11 * DAY).unwrap(), 1);
    assert_eq!(r.tombstone_until(a).unwrap(), None);
    assert!(r.tombstone_path("../x@c.org").is_err());
    assert!(r.remove_tombstone("reserved1@c.org").unwrap());
    assert!(!r.remove_tombstone("reserved1@c.org").unwrap());
    let names: Vec<_> = fs::read_dir(&config.mailboxes_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [STATE_DIR], "no name with an @ besides mailboxes");

    let (_dir, _, off) = setup("tombstone_days = 0\n");
    assert_eq!(off.write_tombstone(a, NOW).unwrap(), None);
    assert!(!off.is_tombstoned(a, NOW));
}

#[test]
fn registration_modes() {
    let (dir, _, r) = setup("");
    assert_eq!(r.mode(), RegistrationMode::Open);
    r.set_mode(RegistrationMode::InviteOnly).unwrap();
    assert_eq!(r.mode(), RegistrationMode::InviteOnly);
    r.set_mode(RegistrationMode::Closed).unwrap();
    assert_eq!(r.mode(), RegistrationMode::Closed);
    assert!(dir.path().join("nocreate").exists());
    r.set_mode(RegistrationMode::Open).unwrap();
    assert_eq!(r.mode(), RegistrationMode::Open);
    fs::create_dir(dir.path().join("nocreate")).unwrap();
    assert_eq!(
        r.mode(),
        RegistrationMode::Closed,
        "a hand-made flag counts"
    );
}

#[test]
fn admission() {
    let (_dir, config, r) = setup("max_creations_per_minute_total = 2\n");
    let user = |a: &str| User::new(&config, a).unwrap();
    let (a, b, c) = (
        user("aaaaaaaaa@c.org"),
        user("bbbbbbbbb@c.org"),
        user("ccccccccc@c.org"),
    );
    assert_eq!(r.precheck(&a, "whatever1", NOW), None);
    assert_eq!(r.admit(&a, "whatever1", NOW).unwrap(), None);
    assert_eq!(r.admit(&b, "whatever1", NOW + 30).unwrap(), None);
    r.reserve_creation(None, NOW).unwrap().commit();
    r.reserve_creation(None, NOW + 30).unwrap().commit();
    let refusal = r.reserve_creation(None, NOW + 59).unwrap_err();
    assert_eq!(refusal, Refusal::RateCap(RateLimit::Total(2)));
    assert_eq!(refusal.to_string(), "more than 2 creations per minute");
    r.reserve_creation(None, NOW + 60)
        .expect("window moved")
        .commit();
    assert_eq!(
        r.admit(&c, "whatever1", NOW + 59).unwrap(),
        None,
        "no cap here"
    );

    r.write_tombstone(a.addr(), NOW).unwrap();
    let refusal = r.precheck(&a, "whatever1", NOW).unwrap();
    assert_eq!(
        refusal.to_string(),
        "address is tombstoned: aaaaaaaaa@c.org"
    );
    b.create_maildir().unwrap();
    fs::write(b.blocked_path(), b"").unwrap();
    assert_eq!(
        r.precheck(&b, "x", NOW),
        Some(Refusal::Blocked(b.addr().into()))
    );

    r.set_mode(RegistrationMode::InviteOnly).unwrap();
    let d = user("ddddddddd@c.org");
    assert_eq!(
        r.precheck(&d, "password1", NOW),
        Some(Refusal::InvitationRequired)
    );
    assert_eq!(
        r.precheck(&d, "abc:password1", NOW),
        Some(Refusal::InvalidInvitation)
    );
    assert_eq!(
        r.precheck(&d, "abc:pass", NOW),
        Some(Refusal::ShortPassword(9))
    );
    let inv = r.create_invitation(1, None, "", NOW).unwrap();
    let pw = format!("{}:password1", inv.token);
    assert_eq!(r.precheck(&d, &pw, NOW + 120), None);
    assert_eq!(r.admit(&d, &pw, NOW + 120).unwrap(), None);
    let e = user("eeeeeeeee@c.org");
    assert_eq!(
        r.precheck(&e, &pw, NOW + 120),
        Some(Refusal::InvalidInvitation)
    );
    assert_eq!(
        r.admit(&e, &pw, NOW + 120).unwrap(),
        Some(Refusal::InvalidInvitation),
        "one use, one account"
    );
}
