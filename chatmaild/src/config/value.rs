//! Typed values of `[params]` (SPEC §1.2): Python `int`, floats, `parse_size`, strict
//! IPv4; every read remembers its key, so the rest are the unused keys of §1.4.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::ini::Params;
use crate::error::{ConfigProblem as Problem, Error};

/// Reads typed values out of the `[params]` map and remembers which keys were read.
pub(super) struct Reader<'a> {
    params: &'a Params,
    pub(super) used: Vec<&'a str>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(params: &'a Params) -> Self {
        Reader {
            params,
            used: Vec::new(),
        }
    }

    pub(super) fn get(&mut self, key: &str) -> Option<(usize, &'a str)> {
        let (k, (line, value)) = self.params.get_key_value(key)?;
        self.used.push(k.as_str());
        Some((*line, value.as_str()))
    }

    pub(super) fn line(&self, key: &str) -> usize {
        self.params.get(key).map_or(0, |(line, _)| *line)
    }

    pub(super) fn string(&mut self, key: &str, default: &str) -> String {
        self.get(key).map_or(default, |(_, v)| v).to_owned()
    }

    pub(super) fn int<T: TryFrom<u64>>(&mut self, key: &str, default: T) -> Result<T, Error> {
        match self.get(key) {
            None => Ok(default),
            Some((line, v)) => parse_python_int(v)
                .and_then(|n| T::try_from(n).ok())
                .ok_or_else(|| cfg_err(line, key, Problem::NotInteger(v.to_owned()))),
        }
    }

    pub(super) fn float(&mut self, key: &str, default: f64) -> Result<f64, Error> {
        match self.get(key) {
            None => Ok(default),
            Some((line, v)) => match v.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(f),
                _ => Err(cfg_err(line, key, Problem::NotNumber(v.to_owned()))),
            },
        }
    }

    /// An IP address (a listen address: no host name, which would need a lookup).
    pub(super) fn ip(&mut self, key: &str, default: IpAddr) -> Result<IpAddr, Error> {
        match self.get(key) {
            None => Ok(default),
            Some((line, v)) => v
                .trim()
                .parse()
                .map_err(|_| cfg_err(line, key, Problem::NotIpAddress(v.to_owned()))),
        }
    }

    pub(super) fn size_mb(&mut self, key: &str, default: &str) -> Result<u64, Error> {
        let (line, v) = self.get(key).unwrap_or((0, default));
        parse_size_mb(v).ok_or_else(|| cfg_err(line, key, Problem::NotSize(v.to_owned())))
    }
}

/// A config error at `line` of the text (the path is added by [`super::Config::load`]).
pub(super) fn cfg_err(line: usize, key: &str, problem: Problem) -> Error {
    Error::Config {
        path: PathBuf::new(),
        line,
        key: key.to_owned(),
        reason: problem,
    }
}

/// `parse_size` of chatmaild: megabytes from `500M`, `2G`, `100MB` or a plain number.
pub fn parse_size_mb(s: &str) -> Option<u64> {
    let upper = s.trim().to_ascii_uppercase();
    let value = upper.strip_suffix('B').unwrap_or(&upper);
    let (digits, factor) = if let Some(rest) = value.strip_suffix('G') {
        (rest, 1024)
    } else if let Some(rest) = value.strip_suffix('M') {
        (rest, 1)
    } else {
        (value, 1)
    };
    parse_python_int(digits)?.checked_mul(factor)
}

/// Python `int(str)` for non-negative values: surrounding whitespace, an optional `+`,
/// digits with single underscores between them.
fn parse_python_int(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return None;
    }
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Python `ipaddress.IPv4Address` acceptance: four decimal octets, no leading zeros.
pub(super) fn parse_strict_ipv4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, part) in octets.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}
