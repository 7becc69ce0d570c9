//! JSON text exactly as Python's `json` module writes it.
//!
//! `metadata.json` is shared with the reference service, which writes it with
//! `json.dump` defaults (`", "` and `": "` separators, non-ASCII as `\uXXXX`, floats in
//! `repr` form); the app versions value travels as one dict line in the compact form
//! (`separators=(",", ":")`). Keeping the bytes identical lets an operator switch between
//! the two implementations and diff their files.

use chatmaild::json_string::python_json_str;
use serde_json::Value;

/// The separators of one of Python's output styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `json.dump(data, f)`: `", "` between items, `": "` after keys.
    Default,
    /// `json.dumps(data, separators=(",", ":"))`: no whitespace at all.
    Compact,
}

/// Serialises `value` like Python's `json.dumps` in `style`.
pub fn dumps(value: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(value, style, &mut out);
    out
}

fn write_value(value: &Value, style: Style, out: &mut String) {
    let (item_sep, key_sep) = match style {
        Style::Default => (", ", ": "),
        Style::Compact => (",", ":"),
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&python_float_repr(f));
            }
        }
        Value::String(s) => out.push_str(&python_json_str(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_value(item, style, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                out.push_str(&python_json_str(key));
                out.push_str(key_sep);
                write_value(item, style, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest round-tripping digits, positional notation for
/// decimal exponents in `-4 < e <= 16` (always with a fractional part), scientific
/// notation with a signed two-digit exponent otherwise.
pub fn python_float_repr(f: f64) -> String {
    if !f.is_finite() {
        // Python writes these too (non-standard JSON); serde_json never parses them.
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    // Rust's `{:e}` prints the shortest round-tripping digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (sign, sci) = match sci.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", sci.as_str()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let ndigits = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let decpt = exp + 1;
    let body = if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            format!("0.{}{digits}", "0".repeat(decpt.unsigned_abs() as usize))
        } else if decpt >= ndigits {
            format!(
                "{digits}{}.0",
                "0".repeat((decpt - ndigits).unsigned_abs() as usize)
            )
        } else {
            let (int, frac) = digits.split_at(decpt.unsigned_abs() as usize);
            format!("{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{frac}e{esign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_compact_styles() {
        let v: Value = serde_json::from_str(
            r#"{"devicetoken": {"01234": 1700000000, "b": 1}, "x": [1, null, true, "ä"]}"#,
        )
        .unwrap();
        assert_eq!(
            dumps(&v, Style::Default),
            r#"{"devicetoken": {"01234": 1700000000, "b": 1}, "x": [1, null, true, "\u00e4"]}"#
        );
        assert_eq!(
            dumps(&v, Style::Compact),
            r#"{"devicetoken":{"01234":1700000000,"b":1},"x":[1,null,true,"\u00e4"]}"#
        );
        assert_eq!(dumps(&serde_json::json!({}), Style::Default), "{}");
        assert_eq!(dumps(&serde_json::json!([]), Style::Default), "[]");
    }

    #[test]
    fn key_order_is_kept() {
        let v: Value = serde_json::from_str(r#"{"z": 1, "a": 2, "m": {"y": 0, "b": 0}}"#).unwrap();
        assert_eq!(
            dumps(&v, Style::Compact),
            r#"{"z":1,"a":2,"m":{"y":0,"b":0}}"#
        );
    }

    #[test]
    fn floats_like_python_repr() {
        for (f, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (1700000000.25, "1700000000.25"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.25e20, "1.25e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123.456, "123.456"),
            (f64::INFINITY, "Infinity"),
        ] {
            assert_eq!(python_float_repr(f), want, "{f}");
        }
    }
}
