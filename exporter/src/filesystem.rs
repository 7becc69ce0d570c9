//! The file system of `mailboxes_dir`: its size, the space and inodes left, read with
//! `statvfs` at every scrape as node-exporter's `node_filesystem_*` are, so an alert sees
//! the disk filling up before doveauth refuses creations (`min_free_disk_space`) and
//! Dovecot fails deliveries. Only this one file system is reported, so no label carries a
//! path.

use std::path::{Path, PathBuf};

use chatmaild::metrics::names::filesystem as names;
use chatmaild::metrics::{Encoder, Kind};
use tracing::warn;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Size in bytes.
    pub size_bytes: u64,
    /// Bytes available to unprivileged users (vmail): what doveauth's
    /// `min_free_disk_space` compares with.
    pub avail_bytes: u64,
    /// Inodes in all.
    pub files: u64,
    /// Inodes free.
    pub files_free: u64,
}

/// Reads the file system holding `path`.
pub fn read(path: &Path) -> std::io::Result<Usage> {
    let st = rustix::fs::statvfs(path)?;
    Ok(Usage {
        size_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        avail_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        files: st.f_files,
        files_free: st.f_ffree,
    })
}

/// Reads off the event loop, within `timeout` (a hung network file system must not hold
/// up the scrape); `None`, logged, if that fails.
pub async fn read_within(path: PathBuf, timeout: std::time::Duration) -> Option<Usage> {
    let shown = path.display().to_string();
    let reading = tokio::task::spawn_blocking(move || read(&path));
    match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(Ok(usage))) => Some(usage),
        Ok(Ok(Err(e))) => {
            warn!(dir = %shown, "cannot read the mailboxes file system: {e}");
            None
        }
        Ok(Err(_)) => None,
        Err(_) => {
            warn!(dir = %shown, "statvfs of the mailboxes file system did not return in time");
            None
        }
    }
}

/// Renders one reading.
pub fn render(enc: &mut Encoder, usage: &Usage) {
    #[expect(
        clippy::cast_precision_loss,
        reason = "byte and inode counts; a gauge needs no more than 53 bits of precision"
    )]
    let figures = [
        (
            names::SIZE_BYTES,
            "Size of the file system of mailboxes_dir in bytes.",
            usage.size_bytes as f64,
        ),
        (
            names::AVAIL_BYTES,
            "Bytes of the file system of mailboxes_dir available to unprivileged users.",
            usage.avail_bytes as f64,
        ),
        (
            names::FILES,
            "Inodes of the file system of mailboxes_dir.",
            usage.files as f64,
        ),
        (
            names::FILES_FREE,
            "Free inodes of the file system of mailboxes_dir.",
            usage.files_free as f64,
        ),
    ];
    for (name, help, value) in figures {
        enc.family(name, help, Kind::Gauge);
        enc.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let u = read(dir.path()).unwrap();
        assert!(u.size_bytes > 0 && u.avail_bytes <= u.size_bytes, "{u:?}");
        assert!(u.files_free <= u.files, "{u:?}");
        assert!(read(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn renders_four_gauges() {
        let mut enc = Encoder::new();
        let usage = Usage {
            size_bytes: 1000,
            avail_bytes: 250,
            files: 64,
            files_free: 8,
        };
        render(&mut enc, &usage);
        let text = enc.finish();
        for line in [
            "chatmail_mailboxes_filesystem_size_bytes 1000\n",
            "chatmail_mailboxes_filesystem_avail_bytes 250\n",
            "chatmail_mailboxes_filesystem_files 64\n",
            "chatmail_mailboxes_filesystem_files_free 8\n",
            "# TYPE chatmail_mailboxes_filesystem_files_free gauge\n",
        ] {
            assert!(text.contains(line), "{line:?} not in {text}");
        }
    }
}
