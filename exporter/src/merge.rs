//! Merging exposition documents: each metric family once, with all its samples.
//!
//! The sources are our own daemons and report tools, but a textfile is an operator's
//! file: lines that are neither comments nor samples are dropped rather than passed on
//! to break the whole scrape.

/// One family: its `# HELP`/`# TYPE` lines and samples.
#[derive(Debug, Default)]
struct Family<'a> {
    name: &'a str,
    help: Option<&'a str>,
    kind: Option<&'a str>,
    samples: Vec<&'a str>,
}

/// The metric name of a sample line, or `None` if it is not one.
fn sample_name(line: &str) -> Option<&str> {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = line.get(..end)?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        && !name.as_bytes().first().is_some_and(u8::is_ascii_digit);
    let rest = match line.get(end..)? {
        r if r.starts_with('{') => r.get(r.rfind('}')? + 1..)?,
        r => r,
    };
    let mut fields = rest.split_whitespace();
    let value_ok = fields.next().is_some_and(|v| v.parse::<f64>().is_ok())
        && fields.next().is_none_or(|t| t.parse::<i64>().is_ok())
        && fields.next().is_none();
    (valid && value_ok).then_some(name)
}

/// Whether sample `name` belongs to family `family` (`_bucket`, `_sum`, `_count` of a
/// histogram or summary).
fn belongs(name: &str, family: &str) -> bool {
    name == family
        || name.strip_prefix(family).is_some_and(|suffix| {
            matches!(
                suffix,
                "_bucket" | "_sum" | "_count" | "_total" | "_created"
            )
        })
}

/// The documents as one, families in order of first appearance.
pub fn merge(docs: &[&str]) -> String {
    let mut families: Vec<Family> = Vec::new();
    for doc in docs {
        let mut current: Option<usize> = None;
        for line in doc.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut parts = rest.trim_start().splitn(3, ' ');
                let (Some(word @ ("HELP" | "TYPE")), Some(name)) = (parts.next(), parts.next())
                else {
                    continue;
                };
                let i = find_or_add(&mut families, name);
                current = Some(i);
                if let Some(f) = families.get_mut(i) {
                    let slot = if word == "HELP" {
                        &mut f.help
                    } else {
                        &mut f.kind
                    };
                    slot.get_or_insert(line);
                }
                continue;
            }
            let Some(name) = sample_name(line) else {
                continue;
            };
            let i = match current {
                Some(i) if families.get(i).is_some_and(|f| belongs(name, f.name)) => i,
                _ => {
                    let i = find_or_add(&mut families, name);
                    current = Some(i);
                    i
                }
            };
            if let Some(f) = families.get_mut(i) {
                f.samples.push(line);
            }
        }
    }
    let mut out = String::new();
    for f in families {
        for line in f.help.iter().chain(&f.kind).chain(&f.samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn find_or_add<'a>(families: &mut Vec<Family<'a>>, name: &'a str) -> usize {
    if let Some(i) = families.iter().position(|f| f.name == name) {
        return i;
    }
    families.push(Family {
        name,
        ..Family::default()
    });
    families.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_merged_once_in_first_seen_order() {
        let a = "# HELP up Up.\n# TYPE up gauge\nup{s=\"a\"} 1\n\
                 # HELP h_seconds H.\n# TYPE h_seconds histogram\n\
                 h_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0.5\nh_seconds_count 1\n";
        let b = "# HELP up Up again.\n# TYPE up gauge\nup{s=\"b\"} 0\n\
                 garbage line\n# random comment\nbare_total 3\n";
        assert_eq!(
            merge(&[a, b]),
            "# HELP up Up.\n# TYPE up gauge\nup{s=\"a\"} 1\nup{s=\"b\"} 0\n\
             # HELP h_seconds H.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0.5\nh_seconds_count 1\n\
             bare_total 3\n"
        );
    }

    #[test]
    fn sample_names() {
        assert_eq!(sample_name("a_b{x=\"1\"} 2"), Some("a_b"));
        assert_eq!(sample_name("a 2"), Some("a"));
        assert_eq!(sample_name("nothing"), None);
        assert_eq!(sample_name("1abc 2"), None);
        assert_eq!(sample_name("bad-name 2"), None);
        assert_eq!(sample_name("a{le=\"+Inf\"} +Inf 1700000000"), Some("a"));
        assert_eq!(sample_name("a{x=\"}\"} NaN"), Some("a"));
        assert_eq!(sample_name("a{x=\"1\"}"), None);
        assert_eq!(sample_name("a 1 2 3"), None);
    }
}
