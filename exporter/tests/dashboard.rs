//! The Grafana dashboard and the Prometheus alert rules ask only for metrics the relay
//! serves, and the report tools' textfiles use only names of that list. (Prometheus itself
//! evaluates both against a running relay in tests/e2e/test_prometheus.py; promtool tests
//! the rules in scripts/check-alerts.)
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

/// The `expr:` of every rule in an alert rules file: one line, or a `|` block of deeper
/// indented lines.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((indent, rest)) = line.split_once("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest != "|" {
            out.push(rest.to_owned());
            continue;
        }
        let mut block = String::new();
        while let Some(next) = lines.peek() {
            if next.len() - next.trim_start().len() <= indent.len() {
                break;
            }
            block.push_str(next.trim());
            block.push('\n');
            lines.next();
        }
        out.push(block);
    }
    out
}

#[test]
fn alert_rules_use_served_metrics_and_each_has_a_test() {
    let dir = repo().join("contrib/prometheus");
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    let exprs = rule_exprs(&rules);
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(exprs.len(), alerts.len(), "one expr per alert");
    assert!(alerts.len() >= 10, "{alerts:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let found = metric_names(expr);
        assert!(
            !found.is_empty() || expr.contains("up{job=\"chatmail\"}"),
            "{expr}: names no metric"
        );
        for name in found {
            assert!(names::is_known(&name), "{name} in {expr} is not served");
            used.insert(name);
        }
    }
    for needed in [
        names::SERVICE_UP,
        names::metadata::QUEUE_ITEMS,
        names::metadata::QUEUE_OLDEST,
        names::filtermail::MESSAGES,
        names::filtermail::DKIM,
        names::filesystem::AVAIL_BYTES,
        names::filesystem::FILES_FREE,
        names::doveauth::CREATIONS_REFUSED,
        names::transport::FAILURES,
    ] {
        assert!(used.contains(needed), "no rule on {needed}");
    }
    // Each alert is shown to fire by the promtool tests, not only to stay quiet.
    for alert in alerts {
        let fires = tests
            .split("alertname: ")
            .skip(1)
            .any(|case| case.starts_with(&format!("{alert}\n")) && case.contains("exp_labels"));
        assert!(fires, "alerts_test.yml never expects {alert} to fire");
    }
}

#[test]
fn rule_expression_extraction() {
    let yaml = "  - alert: A\n    expr: up == 0\n  - alert: B\n    expr: |\n      x\n      and y\n    for: 5m\n";
    assert_eq!(rule_exprs(yaml), ["up == 0", "x\nand y\n"]);
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
    let text = std::fs::read_to_string(repo().join("fsreport/tests/golden/fsreport.prom")).unwrap();
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
