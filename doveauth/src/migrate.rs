//! One-time migration of the legacy sqlite password database (SPEC §3.7).
//!
//! Runs at every start while `passdb_path` exists; afterwards the database is renamed to
//! `<passdb_path>.old`, so later starts skip it. Invalid rows are logged and skipped (the
//! reference aborts and then restarts forever).
//!
//! The accounts are written without a per-file `fsync` (a migration may hold hundreds of
//! thousands) and made durable in one pass before the database is retired: every password
//! file and mailbox directory, then `mailboxes_dir`, then the rename, then the database's
//! directory. A crash or power loss at any point leaves the database in place for a rerun
//! or every account on disk; never a retired database with accounts lost.

use std::path::Path;

use chatmaild::fs::{Durability, sync_dir};
use chatmaild::{Config, User};
use rusqlite::types::ValueRef;
use tracing::{info, warn};

use crate::error::Error;

/// What a migration did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Password files written.
    pub users: usize,
    /// Rows skipped (CI accounts, invalid addresses, unusable values).
    pub skipped: usize,
}

/// Migrates `config.passdb_path` if it exists; `Ok(None)` if there is nothing to do.
pub fn migrate_if_present(config: &Config) -> Result<Option<Migrated>, Error> {
    let db = &config.passdb_path;
    if !db.exists() {
        return Ok(None);
    }
    info!("migrating password database {}", db.display());
    let migrated = migrate(config, db)?;
    retire_database(db)?;
    info!(
        "migrated {} users, skipped {} rows",
        migrated.users, migrated.skipped
    );
    Ok(Some(migrated))
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: path.into(),
        source,
    }
}

fn migrate(config: &Config, db: &Path) -> Result<Migrated, Error> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_err(db))?;
    let mut stmt = conn
        .prepare("SELECT * FROM users")
        .map_err(sqlite_err(db))?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).map_err(sqlite_err(db))?;
    let mut result = Migrated::default();
    let mut written = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_err(db))? {
        if (result.users + result.skipped) % 10_000 == 0 && result.users + result.skipped > 0 {
            info!("migration progress: {} rows", result.users + result.skipped);
        }
        let text = |i: usize| {
            row.get_ref(i)
                .ok()
                .and_then(|v| v.as_str().ok().map(str::to_owned))
        };
        let (Some(addr), Some(password)) = (text(0), text(1)) else {
            warn!("skipping unreadable row in password database");
            result.skipped += 1;
            continue;
        };
        if addr.starts_with("ci-") || addr.starts_with("ac_") {
            result.skipped += 1;
            continue;
        }
        let user = match User::new(config, &addr) {
            Ok(u) => u,
            Err(e) => {
                warn!("skipping row of password database: {e}");
                result.skipped += 1;
                continue;
            }
        };
        user.set_password_with(&password, Durability::Rename)?;
        if columns > 2
            && let Some(ts) = row.get_ref(2).ok().and_then(last_login_value)
        {
            user.set_last_login(ts)?;
        }
        result.users += 1;
        written.push(user);
    }
    // Durable before the database goes: a retired database must never stand for accounts
    // that a power loss can still take back.
    for user in &written {
        user.sync_account()?;
    }
    if !written.is_empty() {
        sync_dir(&config.mailboxes_dir)?;
    }
    Ok(result)
}

/// A truthy `last_login` column value as seconds.
#[expect(
    clippy::cast_possible_truncation,
    reason = "a float timestamp is cut to whole seconds like Python's int(); `as` saturates"
)]
fn last_login_value(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) if i != 0 => Some(i),
        ValueRef::Real(f) if f != 0.0 && f.is_finite() => Some(f.trunc() as i64),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|i| *i != 0),
        _ => None,
    }
}

/// Renames the database to `.old` and removes its `-journal`/`-wal`/`-shm` siblings.
fn retire_database(db: &Path) -> Result<(), Error> {
    let mut old = db.as_os_str().to_owned();
    old.push(".old");
    std::fs::rename(db, &old).map_err(|e| chatmaild::Error::io(db, e))?;
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return Ok(());
    };
    let prefix = format!("{}-", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // A lost rename would run the migration again after a power loss, setting last-login
    // times back to the database's.
    sync_dir(dir)?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_retires() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("passdb.sqlite");
        let mbox = dir.path().join("mail");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (addr TEXT PRIMARY KEY, password TEXT, last_login INTEGER);
             INSERT INTO users VALUES ('abcdefghi@c.org', '{SHA512-CRYPT}$6$a$b', 1700000123);
             INSERT INTO users VALUES ('ci-abc@c.org', '{SHA512-CRYPT}$6$x$y', NULL);
             INSERT INTO users VALUES ('bad/addr@c.org', 'x', NULL);
             INSERT INTO users VALUES ('noatsign', 'x', NULL);
             INSERT INTO users VALUES ('zzzzzzzzz@c.org', '{SHA512-CRYPT}$6$c$d', 0);",
        )
        .unwrap();
        drop(conn);
        std::fs::write(dir.path().join("passdb.sqlite-wal"), b"").unwrap();
        let config = Config::parse(&format!(
            "[params]\nmail_domain = c.org\nmailboxes_dir = {}\npassdb_path = {}\n",
            mbox.display(),
            db.display()
        ))
        .unwrap();
        let m = migrate_if_present(&config).unwrap().unwrap();
        assert_eq!(
            m,
            Migrated {
                users: 2,
                skipped: 3
            }
        );
        let u = User::new(&config, "abcdefghi@c.org").unwrap();
        assert_eq!(
            u.password().unwrap().as_deref(),
            Some("{SHA512-CRYPT}$6$a$b")
        );
        assert_eq!(u.last_login(), Some(1_699_920_000));
        assert!(!u.incoming_cleartext_ok());
        assert!(!mbox.join("ci-abc@c.org").exists());
        assert!(!db.exists());
        assert!(dir.path().join("passdb.sqlite.old").exists());
        assert!(!dir.path().join("passdb.sqlite-wal").exists());
        assert!(migrate_if_present(&config).unwrap().is_none(), "runs once");
    }
}
