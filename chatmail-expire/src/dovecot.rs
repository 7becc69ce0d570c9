//! Dovecot maildir file names (SPEC §7.4).
//!
//! Dovecot names a delivered message `<unix time>.<unique part>,S=<size>,W=<vsize>:2,<flags>`,
//! e.g. `1775324677.M448978P3029757.host,S=3235,W=3305:2,S`. The `S=` value is the size the
//! quota counts; the leading number is the delivery time. The reference matches the path
//! `cur/<name>` with the regular expression `.+/(\d+)\..+,S=(\d+)` (anchored at the start
//! only); [`parse_name`] implements exactly that match on the bare name, without a regex
//! engine: the name starts with digits and a dot, and the size is the digits after the
//! **last** `,S=` that is followed by a digit and preceded by at least one character. As
//! in the regular expression, `.` never matches a newline.

/// Delivery time and quota size parsed from a Dovecot maildir file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DovecotName {
    /// Delivery time in seconds since the epoch (the leading number).
    pub time: u64,
    /// The quota size (`S=`), in bytes.
    pub size: u64,
}

/// Parses a message file name; `None` for names that do not follow Dovecot's pattern
/// (such files are ignored by the quota pass, as in the reference).
pub fn parse_name(name: &[u8]) -> Option<DovecotName> {
    let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let time = parse_digits(name.get(..digits)?);
    let rest = match name.get(digits..)? {
        [b'.', rest @ ..] => rest,
        _ => return None,
    };
    // `.+` cannot cross a newline, so the `,S=` must start before the first one.
    let limit = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let start = (1..limit).rev().find(|&i| {
        rest.get(i..).is_some_and(|tail| {
            tail.starts_with(b",S=") && tail.get(3).is_some_and(u8::is_ascii_digit)
        })
    })?;
    let tail = rest.get(start + 3..)?;
    let len = tail.iter().take_while(|b| b.is_ascii_digit()).count();
    let size = parse_digits(tail.get(..len)?);
    Some(DovecotName { time, size })
}

/// Decimal ASCII digits to a number, saturating where Python would use a big integer:
/// such a value is absurd for a time or a size either way.
fn parse_digits(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Option<(u64, u64)> {
        parse_name(name.as_bytes()).map(|d| (d.time, d.size))
    }

    #[test]
    fn names() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            (
                "1775324677.M448978P3029757.exam,S=3235,W=3305:2,S",
                Some((1775324677, 3235)),
            ),
            ("1.x,S=5", Some((1, 5))),
            ("1.x,S=5,S=7:2,", Some((1, 7))),
            ("1.x,S=5,S=abc", Some((1, 5))),
            ("1.x,S=", None),
            ("1.,S=5", None),
            ("1.a,S=5", Some((1, 5))),
            ("1.,,S=5", Some((1, 5))),
            ("msg_without_structure", None),
            ("x1.a,S=5", None),
            ("12a.b,S=5", None),
            ("12", None),
            ("", None),
            ("1.a\n,S=5", None),
            ("1.a,S=5\n,S=6", Some((1, 5))),
            ("1.a,S=99999999999999999999999", Some((1, u64::MAX))),
            ("00012.a,S=0012", Some((12, 12))),
        ];
        for (name, want) in cases {
            assert_eq!(p(name), *want, "{name:?}");
        }
    }

    #[test]
    fn non_utf8_name() {
        assert_eq!(
            parse_name(b"5.\xff\xfe,S=9").map(|d| (d.time, d.size)),
            Some((5, 9))
        );
    }
}
