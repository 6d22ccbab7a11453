//! Durations and sizes as operators write them.

use std::time::Duration;

use cairn_repo::{Error, Result};

/// Parses `90s`, `5m`, `2h`, `1h30m`, or plain seconds.
///
/// # Errors
/// When `s` is not a duration or is negative.
pub fn parse_duration(s: &str) -> Result<Duration> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let sd: jiff::SignedDuration = s
        .parse::<jiff::Span>()
        .ok()
        .and_then(|sp| {
            sp.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .ok()
        })
        .ok_or_else(|| Error::invalid(format!("`{s}` is not a duration (e.g. 30s, 5m, 1h30m)")))?;
    Duration::try_from(sd)
        .map_err(|_| Error::invalid(format!("duration `{s}` must not be negative")))
}

/// Parses a point in time as an operator writes it: RFC 3339 (`2026-11-30T12:00:00Z`,
/// `…+01:00`), a civil date and time in the system's time zone (`2026-11-30 12:00`,
/// `2026-11-30T12:00:05`), a date alone (its midnight there), or a duration before `now`
/// (`36h`, `2d`: that long ago).
///
/// # Errors
/// When `s` is none of these.
pub fn parse_time(s: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let local = |dt: jiff::civil::DateTime| {
        dt.to_zoned(jiff::tz::TimeZone::system())
            .map(|z| z.timestamp())
            .map_err(|e| Error::invalid(format!("`{s}` is not a time here: {e}")))
    };
    if let Ok(dt) = s.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        return local(dt);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return local(d.to_datetime(jiff::civil::Time::midnight()));
    }
    if s.starts_with(|c: char| c.is_ascii_digit())
        && let Ok(ago) = parse_duration(s)
        && let Ok(ago) = jiff::SignedDuration::try_from(ago)
        && let Ok(t) = now.checked_sub(ago)
    {
        return Ok(t);
    }
    Err(Error::invalid(format!(
        "`{s}` is not a time: give RFC 3339 (2026-11-30T12:00:00Z), a local date and time \
         (2026-11-30 12:00), a date, or how long ago (36h, 2d)"
    )))
}

/// Parses sizes like `512K`, `16M`, `1G` or bytes.
///
/// # Errors
/// When `s` is not a size or does not fit in 64 bits.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || {
        Error::invalid(format!(
            "`{s}` is not a size (use a number with K, M, G or T)"
        ))
    };
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(bad()),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult)
        .ok_or_else(|| Error::invalid(format!("size `{s}` is too large")))
}

/// What `check --read-data-subset` reads: `n/t` (subset n of t), `x%` (a random share of
/// the packs) or a size (random packs up to it).
///
/// # Errors
/// When `s` is none of these (the message says which forms there are).
pub fn parse_read_data(s: &str) -> Result<cairn_repo::ops::check::ReadData> {
    use cairn_repo::ops::check::ReadData;
    if let Some((n, t)) = s.split_once('/') {
        let bad = || Error::invalid(format!("`{s}`: expected n/t, e.g. 1/7"));
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let t: u32 = t.trim().parse().map_err(|_| bad())?;
        if n == 0 || t == 0 || n > t {
            return Err(Error::invalid(format!("`{s}`: n/t needs 1 <= n <= t")));
        }
        return Ok(ReadData::Part { n, of: t });
    }
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| Error::invalid(format!("`{s}`: expected a percentage, e.g. 10%")))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(Error::invalid(format!(
                "`{s}`: the percentage must be above 0 and at most 100"
            )));
        }
        return Ok(ReadData::Percent(p));
    }
    Ok(ReadData::Bytes(parse_size(s).map_err(|_| {
        Error::invalid(format!(
            "`{s}` is not a subset: use n/t (1/7), a percentage (10%) or a size (500M)"
        ))
    })?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_operators_write_them() {
        let now: jiff::Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let at = |s: &str| parse_time(s, now).map(|t| t.to_string());
        assert_eq!(at("2026-11-30T12:00:00Z").unwrap(), "2026-11-30T12:00:00Z");
        assert_eq!(
            at("2026-11-30T13:00:00+01:00").unwrap(),
            "2026-11-30T12:00:00Z"
        );
        assert_eq!(at("36h").unwrap(), "2026-12-01T22:00:00Z");
        assert_eq!(at("2d").unwrap(), "2026-12-01T10:00:00Z");
        let tz = jiff::tz::TimeZone::system();
        let local = |dt: &str| {
            dt.parse::<jiff::civil::DateTime>()
                .unwrap()
                .to_zoned(tz.clone())
                .unwrap()
                .timestamp()
                .to_string()
        };
        assert_eq!(at("2026-11-30 12:00").unwrap(), local("2026-11-30T12:00"));
        assert_eq!(at("2026-11-30").unwrap(), local("2026-11-30T00:00"));
        for bad in ["yesterday", "", "-2d", "2026-13-01", "12:00"] {
            let e = parse_time(bad, now).unwrap_err().to_string();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512K").unwrap(), 512 * 1024);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("7").unwrap(), 7);
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").is_err());
    }
}
