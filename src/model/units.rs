//! Units that appear in compose files and config: Go-style durations (`1m30s`) and byte
//! sizes (`512m`, `2G`), parsed strictly and printed back the way operators write them.

use std::time::Duration;

/// Parses a Go/Compose duration such as `10s`, `1m30s`, `1.5h`, `250ms`, `100us`.
/// A bare `0` is allowed. Returns a message saying what is wrong otherwise.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let hint = "expected a number followed by a unit (ns, us, ms, s, m, h), e.g. \"1m30s\"";
    if t.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {s:?}: {hint}"));
        }
        let num: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: {hint}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("invalid duration {s:?}: missing unit; {hint}")),
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {unit:?}; {hint}"
                ));
            }
        };
        total += num * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total)
        .map_err(|_| format!("invalid duration {s:?}: too large; {hint}"))
}

/// Formats a duration as Compose would accept it back (`1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = (ms / 1000) as u64;
    let mut out = String::new();
    if s >= 3600 {
        out.push_str(&format!("{}h", s / 3600));
        s %= 3600;
    }
    if s >= 60 {
        out.push_str(&format!("{}m", s / 60));
        s %= 60;
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Parses a byte size: a plain integer (bytes) or a number with a unit of b, k, m, g
/// (optionally followed by `b`, any case), binary multiples as Docker uses.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let hint = "expected a number with an optional unit b, k, m or g, e.g. \"512m\" or \"2G\"";
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if num_len == 0 {
        return Err(format!("invalid size {s:?}: {hint}"));
    }
    let num: f64 = t[..num_len]
        .parse()
        .map_err(|_| format!("invalid size {s:?}: {hint}"))?;
    let unit = t[num_len..].trim();
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}; {hint}")),
    };
    Ok((num * scale as f64).round() as u64)
}

/// A latency in seconds as people read it: `850µs`, `12.3ms`, `1.25s`.
pub fn format_latency(s: f64) -> String {
    if !s.is_finite() {
        "-".into()
    } else if s < 0.001 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1000.0)
    } else {
        format!("{s:.2}s")
    }
}

/// Formats bytes with a binary unit, as `docker stats` does (`1.5GiB`, `512MiB`).
pub fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || (v - v.round()).abs() < 0.05 {
        format!("{:.0}{}", v, UNITS[u])
    } else {
        format!("{:.1}{}", v, UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("10x")
                .unwrap_err()
                .contains("unknown unit \"x\"")
        );
        assert!(parse_duration("s").is_err());
        assert!(
            parse_duration("99999999999999999999h")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5gb").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("2X").is_err());
        assert!(parse_bytes("lots").is_err());
        assert_eq!(format_bytes(2 << 30), "2GiB");
        assert_eq!(format_bytes(1536 << 20), "1.5GiB");
    }
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn format_rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 time to seconds since the Unix epoch: UTC (`Z`, as the engine
/// writes it: `2026-11-28T16:35:45.662133433Z`) or with a numeric offset, as Ollama writes
/// `expires_at` in its local zone (`2024-06-04T14:38:31.83753-07:00`, its API's example).
pub fn parse_rfc3339_utc(s: &str) -> Option<f64> {
    let (s, offset) = match s.strip_suffix(['Z', 'z']) {
        Some(rest) => (rest, 0.0),
        None => {
            // `+HH:MM` or `-HH:MM` at the end.
            let at = s.len().checked_sub(6)?;
            let (rest, off) = (s.get(..at)?, s.get(at..)?);
            let sign = match off.as_bytes()[0] {
                b'+' => 1.0,
                b'-' => -1.0,
                _ => return None,
            };
            let (h, m) = off[1..].split_once(':')?;
            let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            (rest, sign * (f64::from(h) * 3600.0 + f64::from(m) * 60.0))
        }
    };
    let (date, time) = s.split_once(['T', 't'])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // Local time = UTC + offset.
    Some(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss - offset)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn rfc3339_with_offsets_is_the_same_instant() {
        let utc = super::parse_rfc3339_utc("2024-06-04T21:38:31.83753Z").unwrap();
        for (text, want) in [
            // Ollama's API example: 14:38 at -07:00 is 21:38 UTC.
            ("2024-06-04T14:38:31.83753-07:00", Some(utc)),
            ("2024-06-04T23:38:31.83753+02:00", Some(utc)),
            ("2024-06-04t21:38:31.83753z", Some(utc)),
            ("2024-06-04T21:38:31.83753+00:00", Some(utc)),
            ("2024-06-04T21:38:31.83753", None),
            ("2024-06-04T21:38:31.83753+24:00", None),
            ("2024-06-04T21:38:31.83753 07:00", None),
        ] {
            let got = super::parse_rfc3339_utc(text);
            assert_eq!(
                got.map(|g| (g * 1e5).round()),
                want.map(|w| (w * 1e5).round()),
                "{text}"
            );
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(super::format_rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::format_rfc3339(1_795_876_200, 5),
            "2026-11-28T14:30:00.005Z"
        );
        assert_eq!(
            super::format_rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
