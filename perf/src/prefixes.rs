//! Prefix and key files: the format of `routeviews-v6-prefixes.txt`.
//!
//! One `<prefix> <value>` per line; `#` starts a comment (whole line or trailing);
//! blank lines are skipped. The prefix is any text form the wire crate accepts:
//! W3IP (`2001:db8::/32` style, up to /256), IPv6 (placed at bits 0-127) or IPv4
//! (bits 0-31), following its documented IPv6-versus-W3IP rule. The value is a
//! decimal u32; **a line without a value gets its 1-based line number** (comment
//! lines count), so every such prefix still has a distinct, reproducible next hop.
//!
//! Key files hold one address per line in any accepted form (W3IP, IPv6, IPv4,
//! `0x` wallet); blank and comment lines are skipped.

use chainroute_wire::{Address, Prefix};
use std::fmt;
use std::path::Path;

#[derive(Debug)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

fn strip(line: &str) -> &str {
    line.split('#').next().unwrap_or("").trim()
}

/// Parses a prefix file's text.
pub fn parse_prefixes(text: &str) -> Result<Vec<(Prefix, u32)>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip(raw);
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let ptext = fields.next().unwrap_or_default();
        let prefix: Prefix = ptext.parse().map_err(|e| ParseError {
            line: i + 1,
            message: format!("{e}"),
        })?;
        let value = match fields.next() {
            Some(v) => v.parse::<u32>().map_err(|_| ParseError {
                line: i + 1,
                message: format!("{v:?} is not a u32 value"),
            })?,
            None => (i + 1) as u32,
        };
        if let Some(extra) = fields.next() {
            return Err(ParseError {
                line: i + 1,
                message: format!("unexpected {extra:?} after the value"),
            });
        }
        out.push((prefix, value));
    }
    Ok(out)
}

/// Parses a key file's text.
pub fn parse_keys(text: &str) -> Result<Vec<Address>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip(raw);
        if line.is_empty() {
            continue;
        }
        out.push(line.parse().map_err(|e| ParseError {
            line: i + 1,
            message: format!("{e}"),
        })?);
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, ParseError> {
    std::fs::read_to_string(path).map_err(|e| ParseError {
        line: 0,
        message: format!("{}: {e}", path.display()),
    })
}

pub fn read_prefixes(path: &Path) -> Result<Vec<(Prefix, u32)>, ParseError> {
    parse_prefixes(&read(path)?).map_err(|e| ParseError {
        line: e.line,
        message: format!("{}: {}", path.display(), e.message),
    })
}

pub fn read_keys(path: &Path) -> Result<Vec<Address>, ParseError> {
    parse_keys(&read(path)?).map_err(|e| ParseError {
        line: e.line,
        message: format!("{}: {}", path.display(), e.message),
    })
}

/// Writes prefixes in the same format (canonical W3IP text).
pub fn format_prefixes(prefixes: &[(Prefix, u32)]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(prefixes.len() * 48);
    for (p, v) in prefixes {
        let _ = writeln!(s, "{p} {v}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let text = "# header\n2001::/32 6939\n\n10.0.0.0/8 7 # trailing\n2001:500:30ff::20/124\n0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed 9\n::/0 0\n";
        let ps = parse_prefixes(text).unwrap();
        assert_eq!(ps.len(), 5);
        assert_eq!(ps[0], ("2001::/32".parse().unwrap(), 6939));
        assert_eq!(ps[1].0.len(), 8);
        assert_eq!(ps[2].0.len(), 124, "the IPv6 reading of a RouteViews line");
        assert_eq!(ps[2].1, 5, "no value: the line number");
        assert_eq!(ps[3].0.len(), 256, "a wallet is its anycast host route");
        assert!(parse_prefixes("2001::/32 x")
            .unwrap_err()
            .message
            .contains("u32"));
        assert_eq!(parse_prefixes("a\n2001::1/8").unwrap_err().line, 1);
        assert_eq!(parse_prefixes("\n2001::1/8").unwrap_err().line, 2);
        let back = parse_prefixes(&format_prefixes(&ps)).unwrap();
        assert_eq!(back, ps);
        let keys = parse_keys("# k\n2001:db8::1\n192.0.2.1\n\n").unwrap();
        assert_eq!(keys.len(), 2);
    }
}
