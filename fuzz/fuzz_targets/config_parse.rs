//! `Config::parse` on any text: never panics, and every error is a config error that
//! names a line of the text, except "section/key missing", which has none.
#![no_main]

use chatmaild::{Config, Error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(config) => {
            assert!(!config.mail_domain.is_empty());
            // The typed value is the raw one the file syntax gives.
            let sections = chatmaild::config::parse_ini(text).expect("parsed once already");
            assert_eq!(sections["params"]["mail_domain"].1, config.mail_domain_bare);
        }
        Err(Error::Config { line, key, .. }) => {
            // Python's splitlines: LF, CR and CRLF end a line.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            if line == 0 {
                assert!(
                    key == "[params]" || key == "mail_domain",
                    "error without a line for key {key:?}"
                );
            } else {
                assert!(line <= lines, "line {line} of {lines}");
            }
        }
        Err(other) => panic!("parse returned a non-config error: {other}"),
    }
});
