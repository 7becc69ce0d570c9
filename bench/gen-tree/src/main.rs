//! `gen-tree DIR [--mailboxes N] [--messages M] [--seed S] [--now EPOCH]`: writes a
//! synthetic chatmail relay tree for benchmarks of `chatmail-expire` and
//! `chatmail-fsreport`.
//!
//! Layout: `DIR/chatmail.ini` (with `mailboxes_dir = DIR/mail`) and `DIR/mail/<9 random
//! chars>@example.org/` holding `password` (mtime = last login at day granularity, spread
//! over 0–120 days, so about a quarter of the accounts are inactive), `maildirsize`,
//! `dovecot.index*`, `dovecot-uidlist`, and `cur/`, `new/`, `tmp/` with M messages named
//! like Dovecot (`<time>.M<usec>P<pid>.<host>,S=<size>,W=<vsize>[:2,S]`). Sizes follow a
//! rough chat mix (mostly small, some attachments over 200 kB, a few MB); mtimes spread
//! over the last 30 days. Message files are sparse (`set_len`), so `st_size` is realistic
//! while the disk holds only inodes. The same seed gives the same tree (relative to
//! `--now`).
#![forbid(unsafe_code)]

use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Args {
    dir: PathBuf,
    mailboxes: u64,
    messages: u64,
    seed: u64,
    now: u64,
}

/// splitmix64: tiny, deterministic, good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut dir = None;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut args = Args {
        dir: PathBuf::new(),
        mailboxes: 1000,
        messages: 10,
        seed: 1,
        now,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("mailboxes") => args.mailboxes = parser.value()?.parse()?,
            Long("messages") => args.messages = parser.value()?.parse()?,
            Long("seed") => args.seed = parser.value()?.parse()?,
            Long("now") => args.now = parser.value()?.parse()?,
            Value(v) if dir.is_none() => dir = Some(PathBuf::from(v)),
            _ => return Err(arg.unexpected()),
        }
    }
    args.dir = dir.ok_or("missing DIR")?;
    Ok(args)
}

fn set_mtime(file: &File, secs: u64) -> std::io::Result<()> {
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    file.set_times(FileTimes::new().set_accessed(t).set_modified(t))
}

fn create(path: &Path, size: u64, mtime: u64) -> std::io::Result<()> {
    let file = File::create(path)?;
    file.set_len(size)?;
    set_mtime(&file, mtime)
}

fn message_size(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=69 => 1_500 + rng.below(30_000),
        70..=89 => 30_000 + rng.below(170_000),
        90..=97 => 200_000 + rng.below(800_000),
        _ => 1_000_000 + rng.below(9_000_000),
    }
}

fn mailbox(args: &Args, index: u64, mail: &Path) -> std::io::Result<()> {
    const DAY: u64 = 86_400;
    let mut rng = Rng(args.seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let local: String = (0..9)
        .map(|_| {
            let n = u8::try_from(rng.below(36)).unwrap_or(0);
            char::from(if n < 26 { b'a' + n } else { b'0' + n - 26 })
        })
        .collect();
    let dir = mail.join(format!("{local}{index}@example.org"));
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let login_day = (args.now / DAY).saturating_sub(rng.below(121)) * DAY;
    fs::write(dir.join("password"), b"{SHA512-CRYPT}$6$synthetic$hash")?;
    set_mtime(
        &File::options().write(true).open(dir.join("password"))?,
        login_day,
    )?;
    for (name, size) in [
        ("maildirsize", 40),
        ("dovecot.index", 1_200),
        ("dovecot.index.log", 3_000),
        ("dovecot.index.cache", 9_000),
        ("dovecot-uidlist", 300),
        ("dovecot-uidvalidity", 8),
    ] {
        create(&dir.join(name), size, login_day)?;
    }
    for seq in 0..args.messages {
        let size = message_size(&mut rng);
        let time = args.now.saturating_sub(rng.below(30 * DAY));
        let (sub, flags) = match rng.below(100) {
            0..=79 => ("cur", ":2,S"),
            80..=98 => ("new", ""),
            _ => ("tmp", ""),
        };
        let name = format!(
            "{time}.M{}P{}.relay,S={size},W={}{flags}",
            rng.below(1_000_000),
            1000 + seq,
            size + size / 40
        );
        create(&dir.join(sub).join(name), size, time)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "gen-tree: {e}\nusage: gen-tree DIR [--mailboxes N] [--messages M] [--seed S] [--now EPOCH]"
            );
            return ExitCode::from(64);
        }
    };
    let mail = args.dir.join("mail");
    if let Err(e) = fs::create_dir_all(&mail).and_then(|()| {
        fs::write(
            args.dir.join("chatmail.ini"),
            format!(
                "[params]\nmail_domain = example.org\nmailboxes_dir = {}\n",
                mail.display()
            ),
        )
    }) {
        eprintln!("gen-tree: {}: {e}", args.dir.display());
        return ExitCode::FAILURE;
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (args, mail, failed) = (&args, &mail, &failed);
            s.spawn(move || {
                let mut i = t;
                while i < args.mailboxes {
                    if let Err(e) = mailbox(args, i, mail) {
                        eprintln!("gen-tree: mailbox {i}: {e}");
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    i += threads;
                }
            });
        }
    });
    if failed.into_inner() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
