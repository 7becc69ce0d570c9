//! The Grafana dashboard asks only for metrics the relay serves, and the report tools'
//! textfiles use only names of that list.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use chatmaild::metrics::names;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `chatmail_*` identifier in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr.get(i..).and_then(|s| s.find("chatmail_")) {
        let start = i + pos;
        let boundary = start == 0
            || !b
                .get(start - 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |e| start + e);
        if boundary {
            out.push(expr[start..end].to_owned());
        }
        i = end;
    }
    out
}

fn panels(v: &Value, out: &mut Vec<Value>) {
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p.clone());
        panels(p, out);
    }
}

#[test]
fn every_panel_queries_served_metrics() {
    let text = std::fs::read_to_string(repo().join("contrib/grafana/chatmail.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut all = Vec::new();
    panels(&dash, &mut all);
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let mut rows = Vec::new();
    for p in &all {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        let title = p["title"].as_str().unwrap();
        if p["type"] == "row" {
            rows.push(title.to_owned());
            continue;
        }
        let targets = p["targets"].as_array().expect("panel has targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let found = metric_names(expr);
            assert!(
                !found.is_empty(),
                "{title}: {expr} names no chatmail metric"
            );
            for name in found {
                assert!(
                    names::is_known(&name),
                    "{title}: {name} is not served by the relay"
                );
                used.insert(name);
            }
        }
    }
    for question in ["accounts", "mail flowing", "pushes", "disk"] {
        assert!(
            rows.iter().any(|r| r.to_lowercase().contains(question)),
            "no row for {question}: {rows:?}"
        );
    }
    for needed in [
        names::doveauth::ACCOUNTS_CREATED,
        names::doveauth::CREATIONS_REFUSED,
        names::filtermail::MESSAGES,
        names::transport::DELIVERED,
        names::metadata::NOTIFICATIONS,
        names::fsreport::STORAGE_BYTES,
        names::SERVICE_UP,
    ] {
        assert!(
            used.iter().any(|u| u.starts_with(needed)),
            "{needed} on no panel"
        );
    }
}

#[test]
fn name_extraction() {
    assert_eq!(
        metric_names("sum(rate(chatmail_a_total{x=\"chatmail_not\"}[5m])) / xchatmail_b"),
        ["chatmail_a_total", "chatmail_not"]
    );
}

#[test]
fn fsreport_textfile_uses_known_names() {
    let text = std::fs::read_to_string(repo().join("metrics/tests/golden/fsreport.prom")).unwrap();
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(names::is_known(name), "{name}");
        n += 1;
    }
    assert!(n > 5, "golden file has samples");
}
