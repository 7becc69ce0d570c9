//! The scan's pure parts, and a mailbox of many folders scanned and emptied without holding
//! a descriptor per folder.

use super::*;

#[test]
fn slice_semantics() {
    assert_eq!(python_slice_len(5, None), 5);
    assert_eq!(python_slice_len(5, Some(0)), 0);
    assert_eq!(python_slice_len(5, Some(3)), 3);
    assert_eq!(python_slice_len(5, Some(9)), 5);
    assert_eq!(python_slice_len(5, Some(-2)), 3);
    assert_eq!(python_slice_len(5, Some(-9)), 0);
}

#[test]
fn sub_names() {
    assert_eq!(
        MaildirSub::from_name(OsStr::new("cur")),
        Some(MaildirSub::Cur)
    );
    assert_eq!(
        MaildirSub::from_name(OsStr::new("new")),
        Some(MaildirSub::New)
    );
    assert_eq!(
        MaildirSub::from_name(OsStr::new("tmp")),
        Some(MaildirSub::Tmp)
    );
    assert_eq!(MaildirSub::from_name(OsStr::new("Cur")), None);
    assert_eq!(MaildirSub::Tmp.name(), "tmp");
}

#[test]
fn thousands_of_folders_cost_no_descriptor_each() {
    let tmp = tempfile::tempdir().unwrap();
    let mbox = tmp.path().join("a@c.org");
    for i in 0..2000 {
        let cur = mbox.join(format!(".f{i}/cur"));
        std::fs::create_dir_all(&cur).unwrap();
        std::fs::write(cur.join("1.M1P1.host,S=1:2,S"), b"x").unwrap();
    }
    std::fs::write(mbox.join("password"), b"{PLAIN}x").unwrap();
    // Process-wide, and other tests run beside this one: a bound far below one per folder.
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = fds();
    let root = Dir::open(tmp.path()).unwrap();
    let Scan::Done(stat) = scan_mailbox(&root, OsStr::new("a@c.org"), ScanOptions::default())
    else {
        panic!("not scanned");
    };
    assert_eq!(stat.messages.len(), 2000);
    assert!(stat.last_login.is_some());
    assert!(fds() < before + 200, "{} descriptors held", fds() - before);
    let mut folders = Folders::default();
    for m in &stat.messages {
        assert!(folders.unlink(&m.at, m.file_name()).unwrap());
    }
    assert!(fds() < before + 200);
    assert!(!mbox.join(".f7/cur/1.M1P1.host,S=1:2,S").exists());
    std::fs::remove_dir_all(mbox.join(".f8/cur")).unwrap();
    std::os::unix::fs::symlink("/etc", mbox.join(".f8/cur")).unwrap();
    let m = stat
        .messages
        .iter()
        .find(|m| m.path.ends_with(".f8/cur/1.M1P1.host,S=1:2,S"))
        .unwrap();
    assert!(
        folders.unlink(&m.at, m.file_name()).is_err(),
        "a folder made a link is not entered"
    );
}
