//! Device tokens in `<maildir>/metadata.json` (SPEC §5.4).
//!
//! The file is the reference's: a JSON object whose `devicetoken` key maps each token to
//! the Unix time of its last `SET`, written with Python's `json.dump` defaults, other keys
//! kept untouched. The legacy form (a list of tokens) is converted on the next change.
//! Changes happen under an exclusive `flock` on `metadata.json.lock`, the lock the
//! reference takes, and replace the file atomically, so reads need no lock and a Python
//! and a Rust service may run side by side.
//!
//! Bounds (not in the reference): every new message fans out into one push per token, so
//! an account keeps at most [`MAX_TOKENS_PER_USER`] tokens (a new one replaces the one set
//! longest ago) and a token longer than [`MAX_TOKEN_LEN`] bytes is refused: the `SET`
//! fails, so its transaction's commit answers `F`, with a log line. Files written by
//! other software may hold more: reads then use only the newest valid ones, and the next
//! change trims the file.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use chatmaild::User;
use chatmaild::fs::{Durability, FileLock, write_atomic};
use serde_json::{Map, Value};
use tracing::{error, warn};

use crate::error::Error;
use crate::json_dump::{Style, dumps};

/// A JSON object with insertion order kept.
type JsonObject = Map<String, Value>;

/// The key of the token map inside `metadata.json`.
pub const DEVICETOKEN_KEY: &str = "devicetoken";

/// A token older than this (seconds) is expired: 90 days.
pub const TOKEN_MAX_AGE: i64 = 90 * 86_400;

/// A token dated further than this (seconds) in the future is invalid.
pub const TOKEN_MAX_FUTURE: i64 = 60;

/// Tokens kept per account. A Delta Chat profile sets one token per device, refreshed on
/// every login; 20 devices on one account is far beyond real use.
pub const MAX_TOKENS_PER_USER: usize = 20;

/// Longest token accepted, in bytes. Real tokens: an APNs token is 64 hex digits, an FCM
/// token `fcm-<app id>:<registration token>` about 170 characters, and what Delta Chat
/// sends today is `openpgp:` followed by the base64 of an OpenPGP message to the
/// notification service, whose payload is the token padded to 512 bytes (about 900
/// characters in all). 4 KiB leaves room for larger keys or padding and bounds a full
/// `metadata.json` to about 80 KiB.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Logged (at warning) when `metadata.json` does not parse; the reference's text.
pub const CORRUPT_LOG: &str = "corrupt serialization state at";

/// Whether a stored timestamp keeps its token: `now - 90 days < ts < now + 60`.
pub fn is_valid_timestamp(ts: &Value, now: i64) -> bool {
    // Compare in f64 like Python does for int and float timestamps alike; i64 seconds of
    // this era are exact in f64.
    #[expect(clippy::cast_precision_loss, reason = "Unix seconds fit f64 exactly")]
    let (low, high) = (
        (now - TOKEN_MAX_AGE) as f64,
        (now + TOKEN_MAX_FUTURE) as f64,
    );
    match ts {
        Value::Number(n) => n.as_f64().is_some_and(|t| low < t && t < high),
        // Python's `True`/`False` compare as 1/0: always far in the past.
        _ => false,
    }
}

/// The token store of all mailboxes below one directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    mailboxes_dir: PathBuf,
}

impl TokenStore {
    /// The store for the mailboxes below `mailboxes_dir`.
    pub fn new(mailboxes_dir: impl Into<PathBuf>) -> Self {
        TokenStore {
            mailboxes_dir: mailboxes_dir.into(),
        }
    }

    /// The validated user `addr` (SPEC §1.5); an invalid address never becomes a path.
    pub fn user(&self, addr: &str) -> Result<User, Error> {
        Ok(User::in_dir(&self.mailboxes_dir, addr)?)
    }

    /// The valid tokens of `addr` in insertion order. Expired tokens are pruned from the
    /// file and a legacy list is converted, as the reference does on read.
    pub fn tokens(&self, addr: &str, now: i64) -> Result<Vec<String>, Error> {
        let user = self.user(addr)?;
        let path = user.metadata_path();
        let (_, data) = read_data(&path)?;
        match data.get(DEVICETOKEN_KEY) {
            Some(Value::Object(map)) => {
                let valid = usable(map, now);
                if valid.len() < map.len()
                    && let Err(e) = self.modify(&user, now, |_| ())
                {
                    // The answer is still right; the next change prunes again.
                    error!("cannot prune expired tokens: {e}");
                }
                Ok(valid)
            }
            Some(Value::Array(_)) => {
                self.modify(&user, now, |tokens| tokens.keys().cloned().collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Stores `token` with time `now`; a known token keeps its position. A new token
    /// beyond [`MAX_TOKENS_PER_USER`] replaces the one set longest ago; a token longer than
    /// [`MAX_TOKEN_LEN`] is refused and changes nothing.
    pub fn add(&self, addr: &str, token: &str, now: i64) -> Result<(), Error> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::TokenTooLong(token.len()));
        }
        let user = self.user(addr)?;
        // Clients re-set the same token on every login. When the file already holds it
        // with this very second and nothing is due for pruning, the locked rewrite would
        // produce identical bytes: skip the lock. (A concurrent removal then simply
        // orders after this set, as it could have under the lock.)
        if let (_, data) = read_data(&user.metadata_path())?
            && let Some(Value::Object(tokens)) = data.get(DEVICETOKEN_KEY)
            && tokens.get(token) == Some(&Value::from(now))
            && tokens.len() <= MAX_TOKENS_PER_USER
            && tokens
                .iter()
                .all(|(t, ts)| t.len() <= MAX_TOKEN_LEN && is_valid_timestamp(ts, now))
        {
            return Ok(());
        }
        self.modify(&user, now, |tokens| {
            tokens.insert(token.to_owned(), Value::from(now));
            keep_newest(tokens, Some(token));
        })
    }

    /// Removes `token` (after a 410 from the notification service); keeps the order of
    /// the others.
    pub fn remove(&self, addr: &str, token: &str, now: i64) -> Result<(), Error> {
        let user = self.user(addr)?;
        self.modify(&user, now, |tokens| {
            tokens.shift_remove(token);
        })
    }

    /// Read, convert and prune, apply `change`, write back, all under the lock. The file
    /// is rewritten only when its bytes change.
    fn modify<R>(
        &self,
        user: &User,
        now: i64,
        change: impl FnOnce(&mut Map<String, Value>) -> R,
    ) -> Result<R, Error> {
        let dir = user.maildir();
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(dir, e)),
        }
        let _lock = FileLock::acquire(&user.metadata_lock_path())?;
        let path = user.metadata_path();
        let (old, mut data) = read_data(&path)?;
        let slot = data
            .entry(DEVICETOKEN_KEY)
            .or_insert_with(|| Value::Object(Map::new()));
        let mut tokens = match std::mem::take(slot) {
            Value::Object(map) => map,
            Value::Array(list) => list
                .iter()
                .filter_map(legacy_token)
                .map(|t| (t, Value::from(now)))
                .collect(),
            // A value the reference would choke on: start over rather than fail forever.
            _ => Map::new(),
        };
        tokens.retain(|t, ts| t.len() <= MAX_TOKEN_LEN && is_valid_timestamp(ts, now));
        keep_newest(&mut tokens, None);
        let result = change(&mut tokens);
        *slot = Value::Object(tokens);
        let text = dumps(&Value::Object(data), Style::Default);
        if old.as_deref() != Some(text.as_bytes()) {
            write_atomic(&path, text.as_bytes(), Durability::Rename)?;
        }
        Ok(result)
    }
}

/// The tokens a reader uses, in file order: valid timestamp, not over-long, and of those
/// the [`MAX_TOKENS_PER_USER`] set most recently.
fn usable(map: &JsonObject, now: i64) -> Vec<String> {
    let mut valid: JsonObject = map
        .iter()
        .filter(|(t, ts)| t.len() <= MAX_TOKEN_LEN && is_valid_timestamp(ts, now))
        .map(|(t, ts)| (t.clone(), ts.clone()))
        .collect();
    keep_newest(&mut valid, None);
    valid.into_iter().map(|(t, _)| t).collect()
}

/// Drops the tokens set longest ago (smallest timestamp; of equal ones the first in file
/// order) until at most [`MAX_TOKENS_PER_USER`] are left; `keep` is never dropped. The
/// others keep their order. Timestamps are valid numbers here (pruned before).
fn keep_newest(tokens: &mut JsonObject, keep: Option<&str>) {
    while tokens.len() > MAX_TOKENS_PER_USER {
        let oldest = tokens
            .iter()
            .filter(|(t, _)| Some(t.as_str()) != keep)
            .map(|(t, ts)| (t, ts.as_f64().unwrap_or(f64::NEG_INFINITY)))
            .fold(None::<(&String, f64)>, |best, (t, ts)| match best {
                Some((_, b)) if b <= ts => best,
                _ => Some((t, ts)),
            })
            .map(|(t, _)| t.clone());
        match oldest {
            Some(t) => {
                tokens.shift_remove(&t);
            }
            None => return,
        }
    }
}

/// A legacy list entry as the dict key Python would make of it.
fn legacy_token(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) | Value::Null => Some(dumps(v, Style::Compact)),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The file's bytes (if any) and its object; a missing file is `{}`, an unparsable one is
/// `{}` with the reference's warning. Other read errors are errors: a file we cannot read
/// must not be overwritten.
fn read_data(path: &Path) -> Result<(Option<Vec<u8>>, JsonObject), Error> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
            return Ok((None, Map::new()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let data = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => map,
        _ => {
            warn!("{CORRUPT_LOG}: {}", path.display());
            Map::new()
        }
    };
    Ok((Some(bytes), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const A: &str = "user@example.org";

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        (dir, store)
    }

    fn file(store: &TokenStore, addr: &str) -> String {
        fs::read_to_string(store.user(addr).unwrap().metadata_path()).unwrap()
    }

    #[test]
    fn validity_window() {
        for (ts, ok) in [
            (NOW, true),
            (NOW - TOKEN_MAX_AGE, false),
            (NOW - TOKEN_MAX_AGE + 1, true),
            (NOW + 59, true),
            (NOW + 60, false),
        ] {
            assert_eq!(is_valid_timestamp(&Value::from(ts), NOW), ok, "{ts}");
        }
        assert!(is_valid_timestamp(&Value::from(NOW as f64 + 0.5), NOW));
        assert!(!is_valid_timestamp(&Value::from("1700000000"), NOW));
        assert!(!is_valid_timestamp(&Value::Null, NOW));
    }

    #[test]
    fn add_writes_python_format_and_keeps_order() {
        let (_d, s) = store();
        assert!(s.tokens(A, NOW).unwrap().is_empty());
        s.add(A, "01234", NOW).unwrap();
        assert_eq!(file(&s, A), r#"{"devicetoken": {"01234": 1700000000}}"#);
        s.add(A, "56789", NOW + 1).unwrap();
        s.add(A, "01234", NOW + 2).unwrap();
        assert_eq!(
            file(&s, A),
            r#"{"devicetoken": {"01234": 1700000002, "56789": 1700000001}}"#
        );
        assert_eq!(s.tokens(A, NOW + 2).unwrap(), ["01234", "56789"]);
        s.remove(A, "01234", NOW + 3).unwrap();
        s.remove(A, "nonexisting", NOW + 3).unwrap();
        assert_eq!(s.tokens(A, NOW + 3).unwrap(), ["56789"]);
        assert!(s.user(A).unwrap().metadata_lock_path().exists());
    }

    #[test]
    fn re_set_in_the_same_second_does_not_rewrite() {
        use std::os::unix::fs::MetadataExt;
        let (_d, s) = store();
        let path = s.user(A).unwrap().metadata_path();
        s.add(A, "t", NOW).unwrap();
        let ino = fs::metadata(&path).unwrap().ino();
        s.add(A, "t", NOW).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().ino(),
            ino,
            "same bytes: no rewrite"
        );
        s.add(A, "t", NOW + 1).unwrap();
        assert_ne!(fs::metadata(&path).unwrap().ino(), ino);
        assert_eq!(file(&s, A), r#"{"devicetoken": {"t": 1700000001}}"#);
    }

    #[test]
    fn empty_and_non_ascii_tokens() {
        let (_d, s) = store();
        s.add(A, "", NOW).unwrap();
        s.add(A, "tök", NOW).unwrap();
        assert_eq!(
            file(&s, A),
            r#"{"devicetoken": {"": 1700000000, "t\u00f6k": 1700000000}}"#
        );
        assert_eq!(s.tokens(A, NOW).unwrap(), ["", "tök"]);
    }

    #[test]
    fn expired_and_future_tokens_are_pruned_on_read() {
        let (_d, s) = store();
        let u = s.user(A).unwrap();
        fs::create_dir(u.maildir()).unwrap();
        let old = NOW - TOKEN_MAX_AGE;
        let text = format!(
            r#"{{"other": [1, 2.5], "devicetoken": {{"old": {old}, "ok": {NOW}, "future": {}}}}}"#,
            NOW + 61
        );
        fs::write(u.metadata_path(), text).unwrap();
        assert_eq!(s.tokens(A, NOW).unwrap(), ["ok"]);
        assert_eq!(
            file(&s, A),
            r#"{"other": [1, 2.5], "devicetoken": {"ok": 1700000000}}"#
        );
    }

    #[test]
    fn legacy_list_is_migrated() {
        let (_d, s) = store();
        let u = s.user(A).unwrap();
        fs::create_dir(u.maildir()).unwrap();
        fs::write(
            u.metadata_path(),
            r#"{"devicetoken": ["oldtoken1", "oldtoken2"], "keep": "x"}"#,
        )
        .unwrap();
        assert_eq!(s.tokens(A, NOW).unwrap(), ["oldtoken1", "oldtoken2"]);
        assert_eq!(
            file(&s, A),
            r#"{"devicetoken": {"oldtoken1": 1700000000, "oldtoken2": 1700000000}, "keep": "x"}"#
        );
    }

    #[test]
    fn corrupt_and_odd_files() {
        let (_d, s) = store();
        let u = s.user(A).unwrap();
        fs::create_dir(u.maildir()).unwrap();
        for bad in ["not json", "[1, 2]", "", r#"{"devicetoken": "x"}"#] {
            fs::write(u.metadata_path(), bad).unwrap();
            assert!(s.tokens(A, NOW).unwrap().is_empty(), "{bad}");
        }
        fs::write(u.metadata_path(), "not json").unwrap();
        s.add(A, "t", NOW).unwrap();
        assert_eq!(file(&s, A), r#"{"devicetoken": {"t": 1700000000}}"#);
    }

    #[test]
    fn a_new_token_beyond_the_cap_replaces_the_one_set_longest_ago() {
        let (_d, s) = store();
        for i in 0..MAX_TOKENS_PER_USER {
            s.add(A, &format!("t{i}"), NOW + i64::try_from(i).unwrap())
                .unwrap();
        }
        // t0 is refreshed, so t1 is now the one set longest ago.
        s.add(A, "t0", NOW + 100).unwrap();
        s.add(A, "new", NOW + 101).unwrap();
        let tokens = s.tokens(A, NOW + 101).unwrap();
        assert_eq!(tokens.len(), MAX_TOKENS_PER_USER);
        assert_eq!(tokens.first().map(String::as_str), Some("t0"), "order kept");
        assert!(!tokens.contains(&"t1".to_owned()));
        assert_eq!(tokens.last().map(String::as_str), Some("new"));
        // The file holds exactly what is served, in the reference's format.
        let text = file(&s, A);
        assert!(text.starts_with(r#"{"devicetoken": {"t0": 1700000100, "t2": 1700000002, "#));
        assert!(
            text.ends_with(r#""t19": 1700000019, "new": 1700000101}}"#),
            "{text}"
        );
        // A burst of fresh tokens in one second keeps the last twenty.
        for i in 0..100 {
            s.add(A, &format!("burst{i}"), NOW + 200).unwrap();
        }
        let want: Vec<String> = (80..100).map(|i| format!("burst{i}")).collect();
        assert_eq!(s.tokens(A, NOW + 200).unwrap(), want);
    }

    #[test]
    fn the_token_just_set_survives_even_among_future_dated_ones() {
        let (_d, s) = store();
        let u = s.user(A).unwrap();
        fs::create_dir(u.maildir()).unwrap();
        let entries: Vec<String> = (0..MAX_TOKENS_PER_USER)
            .map(|i| format!(r#""f{i}": {}"#, NOW + 30))
            .collect();
        fs::write(
            u.metadata_path(),
            format!(r#"{{"devicetoken": {{{}}}}}"#, entries.join(", ")),
        )
        .unwrap();
        s.add(A, "mine", NOW).unwrap();
        let tokens = s.tokens(A, NOW).unwrap();
        assert_eq!(tokens.len(), MAX_TOKENS_PER_USER);
        assert!(tokens.contains(&"mine".to_owned()));
        assert!(!tokens.contains(&"f0".to_owned()));
    }

    #[test]
    fn over_long_tokens_are_refused_and_change_nothing() {
        let (_d, s) = store();
        s.add(A, "keep", NOW).unwrap();
        let before = file(&s, A);
        let long = "x".repeat(MAX_TOKEN_LEN + 1);
        let err = s.add(A, &long, NOW + 1).unwrap_err();
        assert!(matches!(err, Error::TokenTooLong(n) if n == MAX_TOKEN_LEN + 1));
        assert!(err.to_string().contains("4096"), "{err}");
        assert_eq!(file(&s, A), before);
        let exact = "y".repeat(MAX_TOKEN_LEN);
        s.add(A, &exact, NOW + 1).unwrap();
        assert_eq!(s.tokens(A, NOW + 1).unwrap(), ["keep".to_owned(), exact]);
        // A real Delta Chat token of today's form fits.
        let delta = format!("openpgp:{}", "A".repeat(900));
        s.add(A, &delta, NOW + 2).unwrap();
    }

    #[test]
    fn files_beyond_the_bounds_are_read_bounded_and_trimmed() {
        let (_d, s) = store();
        let u = s.user(A).unwrap();
        fs::create_dir(u.maildir()).unwrap();
        let long = "z".repeat(MAX_TOKEN_LEN + 1);
        let mut entries: Vec<String> = (0..1000)
            .map(|i| format!(r#""t{i}": {}"#, NOW - 1000 + i))
            .collect();
        entries.insert(500, format!(r#""{long}": {NOW}"#));
        fs::write(
            u.metadata_path(),
            format!(r#"{{"x": 1, "devicetoken": {{{}}}}}"#, entries.join(", ")),
        )
        .unwrap();
        let want: Vec<String> = (980..1000).map(|i| format!("t{i}")).collect();
        assert_eq!(s.tokens(A, NOW).unwrap(), want);
        let text = file(&s, A);
        assert!(
            text.starts_with(r#"{"x": 1, "devicetoken": {"t980": 1699999980, "#),
            "{text}"
        );
        assert!(!text.contains(&long));
        assert_eq!(
            s.tokens(A, NOW).unwrap(),
            want,
            "the trimmed file reads the same"
        );
    }

    #[test]
    fn invalid_addresses_touch_nothing() {
        let (d, s) = store();
        for addr in ["", "noat", "../x@y", "a@b/c", "nul\0@x"] {
            assert!(s.add(addr, "t", NOW).is_err(), "{addr:?}");
            assert!(s.tokens(addr, NOW).is_err(), "{addr:?}");
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn concurrent_modification_from_threads_loses_nothing() {
        // Eight devices refresh their token 25 times each, at once: without the lock a
        // writer that read the file before another's rename would drop that change.
        let (_d, s) = store();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        s.add(A, &format!("t{t}"), NOW + i).unwrap();
                        // Readers never see a torn file.
                        assert!(!s.tokens(A, NOW + i).unwrap().is_empty());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let tokens = s.tokens(A, NOW + 24).unwrap();
        assert_eq!(tokens.len(), 8, "{tokens:?}");
        let text = file(&s, A);
        for t in 0..8 {
            assert!(
                text.contains(&format!(r#""t{t}": 1700000024"#)),
                "last refresh of t{t} kept: {text}"
            );
        }
    }
}
