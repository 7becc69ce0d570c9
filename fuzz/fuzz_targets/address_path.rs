//! Address validation: any address `User::in_dir` accepts names exactly one directory
//! directly below `mailboxes_dir`, and every derived file is directly inside that one; the
//! delivery mailbox `canonical_mailbox` finds for a spelling is canonical itself.
#![no_main]

use std::path::{Component, Path};

use chatmaild::User;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|addr: &str| {
    // The delivery mailbox of a plain spelling is itself plain, maps to itself, and is a
    // valid mailbox directory name.
    if let Ok(mailbox) = chatmaild::address::canonical_mailbox(addr) {
        let again = chatmaild::address::canonical_mailbox(mailbox.as_str());
        assert_eq!(again.as_ref(), Ok(&mailbox), "{addr:?} -> {mailbox}");
        assert!(chatmaild::user::validate_address(mailbox.as_str()).is_ok());
        assert!(mailbox.as_str().is_ascii());
        assert_eq!(mailbox.as_str(), mailbox.as_str().to_ascii_lowercase());
    }
    let dir = Path::new("/home/vmail/mail/chat.example.org");
    let Ok(user) = User::in_dir(dir, addr) else {
        return;
    };
    let maildir = user.maildir();
    assert_eq!(maildir.parent(), Some(dir), "{addr:?} escapes");
    let last = maildir.components().last();
    assert!(
        matches!(last, Some(Component::Normal(name)) if name == addr),
        "{addr:?} is not one normal component: {last:?}"
    );
    assert_eq!(maildir.components().count(), dir.components().count() + 1);
    for file in [
        user.password_path(),
        user.password_lock_path(),
        user.enforce_e2ee_path(),
        user.metadata_path(),
        user.metadata_lock_path(),
    ] {
        assert_eq!(file.parent(), Some(maildir));
    }
    assert!(!addr.contains(['\0', '/']));
});
