//! Every shipped binary has a man page, rendered from the same text its `--help` prints
//! (`chatmaild::manual`), and the committed pages in `man/` are that rendering: a changed
//! help text without regenerated pages (`scripts/man`) fails here. `man -l` renders each
//! page without a warning.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use chatmail_tests::service::bin_dir;
use chatmaild::manual::Page;

/// Set by `scripts/man`: write the pages instead of comparing them.
const WRITE_ENV: &str = "CHATMAIL_WRITE_MAN";

/// (package, page) of every shipped binary: each package's `MANUALS`.
fn pages() -> Vec<(&'static str, &'static Page)> {
    let packages: [(&str, &[&Page]); 9] = [
        ("doveauth", doveauth::MANUALS),
        ("lastlogin", lastlogin::MANUALS),
        ("chatmail-metadata", chatmail_metadata::MANUALS),
        ("filtermail", filtermail::MANUALS),
        ("chatmail-expire", chatmail_expire::MANUALS),
        ("chatmail-fsreport", chatmail_fsreport::MANUALS),
        ("chatmail-admin", chatmail_admin::MANUALS),
        ("chatmail-exporter", chatmail_exporter::MANUALS),
        ("chatmail-render", chatmail_render::MANUALS),
    ];
    packages
        .into_iter()
        .flat_map(|(package, pages)| pages.iter().map(move |page| (package, *page)))
        .collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn man_dir() -> PathBuf {
    repo().join("man")
}

#[test]
fn committed_pages_are_the_rendered_help_text() {
    let write = std::env::var_os(WRITE_ENV).is_some();
    if write {
        std::fs::create_dir_all(man_dir()).unwrap();
    }
    let mut stale = Vec::new();
    for (_, page) in pages() {
        let path = man_dir().join(page.file_name());
        let roff = page.roff();
        if write {
            std::fs::write(&path, &roff).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(roff.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (run scripts/man to render them again): {stale:?}"
    );
    let committed: BTreeSet<String> = std::fs::read_dir(man_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = pages().iter().map(|(_, p)| p.file_name()).collect();
    assert_eq!(
        committed, expected,
        "man/ holds exactly one page per binary"
    );
}

#[test]
fn every_shipped_binary_has_a_page_in_its_section() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success());
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bench = repo().join("bench").canonicalize().unwrap();
    let mut shipped = BTreeSet::new();
    for package in meta["packages"].as_array().unwrap() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
        if manifest.starts_with(&bench) {
            continue;
        }
        for target in package["targets"].as_array().unwrap() {
            if target["kind"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "bin")
            {
                shipped.insert(target["name"].as_str().unwrap().to_owned());
            }
        }
    }
    let documented: BTreeSet<String> = pages().iter().map(|(_, p)| p.name.to_owned()).collect();
    assert_eq!(shipped, documented);
    for (_, page) in pages() {
        let admin_tool = matches!(
            page.name,
            "doveauth"
                | "lastlogin"
                | "chatmail-metadata"
                | "filtermail"
                | "chatmail-exporter"
                | "chatmail-admin"
        );
        assert_eq!(
            page.section,
            if admin_tool { 8 } else { 1 },
            "{}",
            page.name
        );
        assert!(page.usage.starts_with(&format!("usage: {}", page.name)));
    }
}

/// Builds every binary with a page (cargo test builds only this package's targets, and
/// an old binary would print an old text).
fn build_all() {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "--bins"]).current_dir(repo());
    let packages: BTreeSet<&str> = pages().iter().map(|(p, _)| *p).collect();
    for p in packages {
        cmd.args(["-p", p]);
    }
    assert!(cmd.status().unwrap().success(), "cargo build failed");
}

#[test]
fn help_prints_the_page_and_a_wrong_command_line_its_usage() {
    build_all();
    for (_, page) in pages() {
        let bin = bin_dir().join(page.name);
        for flag in ["--help", "-h"] {
            let out = Command::new(&bin)
                .arg(flag)
                .env_remove("GATEWAY_INTERFACE")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{} {flag}", page.name);
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("{}\n", page.help()),
                "{} {flag}",
                page.name
            );
            assert!(out.stderr.is_empty(), "{} {flag}", page.name);
        }
        if page.name == "chatmail-newemail" {
            continue; // a CGI program: its arguments are not read at all
        }
        let out = Command::new(&bin).arg("--no-such-option").output().unwrap();
        assert!(!out.status.success(), "{}", page.name);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(page.usage), "{}: {stderr}", page.name);
    }
}

#[test]
fn man_renders_every_page_without_warnings() {
    for (_, page) in pages() {
        let path = man_dir().join(page.file_name());
        let out = Command::new("man")
            .arg("--warnings")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man (man-db) is installed: scripts/install-deps");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{}: {stderr}",
            page.name
        );
        let text = String::from_utf8(out.stdout).unwrap();
        for needle in ["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS"] {
            assert!(
                text.contains(needle),
                "{}: no {needle} in\n{text}",
                page.name
            );
        }
        for form in page.synopsis() {
            let words: Vec<&str> = form.split_whitespace().collect();
            let rendered: Vec<&str> = text.split_whitespace().collect();
            assert!(
                rendered.windows(words.len()).any(|w| w == words.as_slice()),
                "{}: synopsis {form:?} not in\n{text}",
                page.name
            );
        }
    }
}
