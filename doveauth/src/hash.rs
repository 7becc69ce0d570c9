//! Password hashes (SPEC §3.5). The implementation lives in [`chatmaild::hash`] so that
//! `chatmail-admin` writes exactly the hashes doveauth writes.

pub use chatmaild::hash::{hash_password, verify_password};
