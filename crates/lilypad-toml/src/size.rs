//! Byte sizes written for people: `"64MiB"`, `"1.5GiB"`, `"512KiB"`, `"100MB"` or a plain number
//! of bytes.
//!
//! This is the one size syntax. It is our own rather than `bytesize`'s, which also takes
//! lower-case and one-letter units (`"64m"`, `"1k"`) whose meaning, binary or decimal, a reader
//! of a module file cannot tell; here the unit is spelled out and case matters.

const UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

/// Parses a size such as `"64MiB"`, `"1.5GiB"`, `"100MB"`, `"512"` (bytes). Binary (`KiB`,
/// `MiB`, `GiB`, `TiB`) and decimal (`KB`, `MB`, `GB`, `TB`) units are accepted; a space between
/// number and unit is allowed. Returns `None` for anything else.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS.iter().find(|(u, _)| *u == unit)?.1
    };
    if number.is_empty() {
        return None;
    }
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(multiplier);
    }
    let x: f64 = number.parse().ok()?;
    let bytes = (x * multiplier as f64).round();
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Formats a byte count for messages: `"64 MiB"`, `"1.5 GiB"`, `"300 bytes"`.
pub fn format_bytes(bytes: u64) -> String {
    const BINARY: &[(&str, u64)] = &[
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in BINARY {
        if bytes >= *size {
            let x = bytes as f64 / *size as f64;
            return if bytes.is_multiple_of(*size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{x:.1} {unit}")
            };
        }
    }
    if bytes == 1 {
        "1 byte".to_owned()
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_binary_decimal_and_plain_sizes() {
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_bytes("512 KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("100MB"), Some(100_000_000));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("0"), Some(0));
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        for bad in [
            "",
            "MiB",
            "12 parsecs",
            "-5MiB",
            "1..2GiB",
            "99999999999TiB",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_sizes_for_people() {
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(300), "300 bytes");
        assert_eq!(format_bytes(1), "1 byte");
    }
}
