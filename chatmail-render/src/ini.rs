//! A new local relay's `chatmail.ini`: `relay/chatmail.ini.in` rendered for its layout,
//! with settings of the caller (`key=value`: a key's line is replaced, a new key appended to
//! `[params]`). The lines of a key are found with the services' own ini parser, and the
//! result must load as the services load it, so a bad setting fails here and not at the
//! first daemon's start.

use std::path::Path;

use chatmaild::Config;
use chatmaild::config::parse_ini;

use crate::Error;
use crate::layout::Layout;
use crate::relay::write_file;
use crate::template::{Values, render};

/// A `key=value` setting.
pub fn parse_setting(setting: &str) -> Result<(String, String), Error> {
    let bad = || Error::Usage(format!("setting {setting:?}: expected KEY=VALUE"));
    let (key, value) = setting.split_once('=').ok_or_else(bad)?;
    let (key, value) = (key.trim(), value.trim());
    let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !key_ok || value.contains(['\n', '\r']) {
        return Err(bad());
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// `text` with `key = value`: the key's line in `[params]` replaced, or the line appended
/// (the file's last section is `[params]`).
pub fn set(text: &str, key: &str, value: &str) -> Result<String, Error> {
    let line = format!("{key} = {value}");
    let sections = parse_ini(text)?;
    let Some(&(number, _)) = sections.get("params").and_then(|p| p.get(key)) else {
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        return Ok(format!("{text}{sep}{line}\n"));
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    if let Some(l) = lines.get_mut(number.saturating_sub(1)) {
        *l = &line;
    }
    Ok(lines.join("\n"))
}

/// Writes `<state>/chatmail.ini` from `chatmail.ini.in` in `templates` with `settings`.
pub fn write_ini(
    templates: &Path,
    layout: &Layout,
    settings: &[(String, String)],
) -> Result<(), Error> {
    let path = templates.join("chatmail.ini.in");
    let template = std::fs::read_to_string(&path).map_err(|e| chatmaild::Error::io(&path, e))?;
    let values: Values = [
        ("MAIL_DOMAIN_BARE", layout.listen.to_string()),
        ("LISTEN", layout.listen.to_string()),
        (
            "MAILBOXES_DIR",
            layout.mailboxes_dir().display().to_string(),
        ),
        (
            "NOCREATE_FILE",
            layout.nocreate_file().display().to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let mut text = render(&path, &template, &values)?;
    for (key, value) in settings {
        text = set(&text, key, value)?;
    }
    Config::parse(&text).map_err(|e| match e {
        chatmaild::Error::Config {
            line, key, reason, ..
        } => chatmaild::Error::Config {
            path: layout.ini(),
            line,
            key,
            reason,
        },
        other => other,
    })?;
    write_file(&layout.ini(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        assert_eq!(
            parse_setting(" max_message_size = 100 ").unwrap(),
            ("max_message_size".into(), "100".into())
        );
        assert_eq!(parse_setting("iroh_relay=").unwrap().1, "");
        assert_eq!(
            parse_setting("url=http://x/?a=b").unwrap().1,
            "http://x/?a=b"
        );
        for bad in ["novalue", "=1", "a b=1", "k=a\nb"] {
            assert_eq!(parse_setting(bad).unwrap_err().exit_code(), 64, "{bad:?}");
        }
    }

    #[test]
    fn set_replaces_or_appends() {
        let text = "# c\n[params]\nmail_domain = x.org\nmax_message_size: 5\n";
        assert_eq!(
            set(text, "max_message_size", "7").unwrap(),
            "# c\n[params]\nmail_domain = x.org\nmax_message_size = 7\n"
        );
        assert_eq!(
            set(text, "notification_url", "http://127.0.0.1:9/n").unwrap(),
            format!("{text}notification_url = http://127.0.0.1:9/n\n")
        );
        assert_eq!(
            set("[params]\na = 1", "b", "2").unwrap(),
            "[params]\na = 1\nb = 2\n"
        );
        // The same key in another section is not the one in [params].
        assert_eq!(
            set("[other]\nk = 1\n[params]\nk = 2\n", "k", "3").unwrap(),
            "[other]\nk = 1\n[params]\nk = 3\n"
        );
        assert!(set("[params]\nbroken line\n", "k", "1").is_err());
    }
}
