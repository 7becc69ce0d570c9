//! The app versions index (SPEC §5.7), served as one compact JSON line.
//!
//! The relay's default index is built into the binary; an operator may point
//! `appversions_path` in `chatmail.ini` at their own file, which is read on every lookup
//! so edits take effect without a restart.

use std::io::ErrorKind;
use std::path::Path;

use serde_json::Value;
use tracing::{debug, error};

use crate::json_dump::{Style, dumps};

/// The index the relay ships (`chatmaild/defaults/appversions.json`).
pub const DEFAULT_APPVERSIONS: &str = include_str!("../data/appversions.json");

/// `bytes` parsed and re-serialised compactly: no whitespace, key order kept, non-ASCII
/// as `\uXXXX`, so the value fits one dict line.
pub fn compact(bytes: &[u8]) -> Result<String, serde_json::Error> {
    let value: Value = serde_json::from_slice(bytes)?;
    Ok(dumps(&value, Style::Compact))
}

/// The value to serve: from the operator's file if configured (missing → `None`, read
/// or parse error → `None` and logged), else the built-in default.
#[cfg(test)]
pub async fn lookup(path: Option<&Path>, default: Option<&str>) -> Option<String> {
    match lookup_checked(path, default).await {
        AppVersions::Found(v) => Some(v),
        AppVersions::Missing | AppVersions::Failed => None,
    }
}

/// The outcome of an app versions lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppVersions {
    /// The compact JSON to serve.
    Found(String),
    /// No operator file (and no default): nothing to serve, nothing wrong.
    Missing,
    /// The operator file could not be read or parsed (logged).
    Failed,
}

/// [`lookup`], telling a missing file from a broken one.
pub async fn lookup_checked(path: Option<&Path>, default: Option<&str>) -> AppVersions {
    let Some(path) = path else {
        return default.map_or(AppVersions::Missing, |d| AppVersions::Found(d.to_owned()));
    };
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            debug!("no app versions file at {}", path.display());
            return AppVersions::Missing;
        }
        Err(e) => {
            error!("failed to read {}: {e}", path.display());
            return AppVersions::Failed;
        }
    };
    match compact(&bytes) {
        Ok(v) => AppVersions::Found(v),
        Err(e) => {
            error!("failed to read {}: {e}", path.display());
            AppVersions::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_single_line() {
        let v = compact(DEFAULT_APPVERSIONS.as_bytes()).unwrap();
        assert!(v.starts_with(r#"{"clients":[{"clientId":"deltachat","sources":[{"sourceId":"#));
        assert!(!v.contains('\n') && !v.contains(' '));
        let parsed: Value = serde_json::from_str(&v).unwrap();
        let source = &parsed["clients"][0]["sources"][0];
        assert!(source["versionInteger"].as_u64().unwrap() < 1 << 32);
        for key in ["sourceId", "versionString", "downloadUrl"] {
            assert!(source[key].is_string(), "{key}");
        }
    }

    #[test]
    fn compact_like_python() {
        assert_eq!(
            compact(b"{\n  \"clients\": []\n}").unwrap(),
            r#"{"clients":[]}"#
        );
        assert_eq!(
            compact(br#"{"clients": [{"clientId": "one\ntwo", "b": "\u00e9"}]}"#).unwrap(),
            r#"{"clients":[{"clientId":"one\ntwo","b":"\u00e9"}]}"#
        );
        assert!(compact(b"bad json").is_err());
    }

    #[tokio::test]
    async fn operator_file_read_on_every_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("appversions.json");
        assert_eq!(lookup(Some(&p), Some("default")).await, None, "missing");
        std::fs::write(&p, "{\"clients\": []}").unwrap();
        assert_eq!(
            lookup(Some(&p), Some("default")).await.unwrap(),
            r#"{"clients":[]}"#
        );
        std::fs::write(&p, "bad json").unwrap();
        assert_eq!(lookup(Some(&p), Some("default")).await, None);
        assert_eq!(lookup(None, Some("default")).await.unwrap(), "default");
    }
}
