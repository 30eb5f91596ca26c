//! Durations written for people: `"250ms"`, `"2s"`, `"1.5s"`, `"5m"`, `"1h"`.
//!
//! This is the one duration syntax of chains.toml and module files. It is our own rather than
//! `humantime`'s, which refuses decimals such as `"1.5s"` and accepts units (days, weeks, years,
//! `"1h 30m"` sums) that no field here wants.

use std::time::Duration;

/// Parses `250ms`, `2s`, `1.5s`, `5m`, `1h` (a space before the unit is allowed). Returns `None`
/// for anything else, including a number with no unit.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// Formats a duration in the syntax [`parse_duration`] reads, in the largest unit that divides
/// it: `"250ms"`, `"30s"`, `"10m"`, `"24h"`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 3 s "), Some(Duration::from_secs(3)));
    }

    #[test]
    fn durations_reject_missing_or_unknown_units() {
        for bad in ["", "5", "s", "5d", "five s", "-1s", "1..2s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should not parse");
        }
    }

    #[test]
    fn formatted_durations_read_back() {
        for (d, text) in [
            (Duration::from_millis(10), "10ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(24 * 3600), "24h"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Some(d), "{text}");
        }
    }
}
