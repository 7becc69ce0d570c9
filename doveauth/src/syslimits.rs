//! The system limits that stop account creation on an overloaded relay (SPEC §3.8).
//!
//! Only creation is refused; logins of existing accounts never look at these. A value
//! that cannot be read is skipped with a log line and the other checks still apply.

use std::path::Path;

use chatmaild::Config;
use tracing::warn;

/// Current readings; `None` where a value could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Readings {
    /// 1-minute load average.
    pub load_1m: Option<f64>,
    /// `MemAvailable` in whole MiB.
    pub available_memory_mb: Option<u64>,
    /// Free space for unprivileged users on the mailbox file system, whole MiB.
    pub free_disk_mb: Option<u64>,
}

impl Readings {
    /// Reads /proc and `statvfs(mailboxes_dir)`.
    pub fn read(mailboxes_dir: &Path) -> Readings {
        let load_1m = std::fs::read_to_string("/proc/loadavg")
            .map_err(|e| e.to_string())
            .and_then(|s| parse_loadavg(&s).ok_or_else(|| "unparsable /proc/loadavg".to_owned()));
        let mem = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| e.to_string())
            .and_then(|s| {
                parse_mem_available_mb(&s)
                    .ok_or_else(|| "no MemAvailable in /proc/meminfo".to_owned())
            });
        let disk = rustix::fs::statvfs(mailboxes_dir)
            .map(|st| st.f_bavail.saturating_mul(st.f_frsize) / (1024 * 1024))
            .map_err(|e| format!("statvfs {}: {e}", mailboxes_dir.display()));
        Readings {
            load_1m: ok_or_log(load_1m),
            available_memory_mb: ok_or_log(mem),
            free_disk_mb: ok_or_log(disk),
        }
    }

    /// The first limit exceeded, as the reason logged after `registration rejected: `.
    pub fn refusal(&self, config: &Config) -> Option<String> {
        if let Some(load) = self.load_1m
            && load > config.max_load_1m
        {
            return Some(format!("load avg {load:.2} > {:.2}", config.max_load_1m));
        }
        if let Some(mem) = self.available_memory_mb
            && mem < config.min_available_memory_mb
        {
            return Some(format!(
                "available memory {mem}MB < {}MB",
                config.min_available_memory_mb
            ));
        }
        if let Some(disk) = self.free_disk_mb
            && disk < config.min_free_disk_space_mb
        {
            return Some(format!(
                "free disk {disk}MB < {}MB",
                config.min_free_disk_space_mb
            ));
        }
        None
    }
}

fn ok_or_log<T>(r: Result<T, String>) -> Option<T> {
    r.map_err(|e| warn!("ignoring unreadable system limit: {e}"))
        .ok()
}

/// The first field of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `MemAvailable` of `/proc/meminfo` (in kB) as whole MiB.
pub fn parse_mem_available_mb(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse("[params]\nmail_domain = x.org\nmax_load_1m = 2\nmin_available_memory = 100M\nmin_free_disk_space = 1G\n").unwrap()
    }

    #[test]
    fn parses_proc() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/613 12345\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(
            parse_mem_available_mb("MemTotal: 1 kB\nMemAvailable:    2097152 kB\n"),
            Some(2048)
        );
        assert_eq!(parse_mem_available_mb("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn refusals_in_order() {
        let c = config();
        let ok = Readings {
            load_1m: Some(1.0),
            available_memory_mb: Some(500),
            free_disk_mb: Some(5000),
        };
        assert_eq!(ok.refusal(&c), None);
        let load = Readings {
            load_1m: Some(7.0),
            available_memory_mb: Some(1),
            ..ok
        };
        assert_eq!(load.refusal(&c).unwrap(), "load avg 7.00 > 2.00");
        let mem = Readings {
            available_memory_mb: Some(99),
            ..ok
        };
        assert_eq!(mem.refusal(&c).unwrap(), "available memory 99MB < 100MB");
        let disk = Readings {
            free_disk_mb: Some(1023),
            ..ok
        };
        assert_eq!(disk.refusal(&c).unwrap(), "free disk 1023MB < 1024MB");
        let unreadable = Readings {
            load_1m: None,
            available_memory_mb: None,
            free_disk_mb: Some(1),
        };
        assert!(unreadable.refusal(&c).unwrap().starts_with("free disk"));
        assert!(Readings::default().refusal(&c).is_none());
    }

    #[test]
    fn reads_this_machine() {
        let r = Readings::read(Path::new("/"));
        assert!(r.load_1m.is_some() && r.available_memory_mb.is_some() && r.free_disk_mb.is_some());
        assert!(
            Readings::read(Path::new("/nonexistent/dir"))
                .free_disk_mb
                .is_none()
        );
    }
}
