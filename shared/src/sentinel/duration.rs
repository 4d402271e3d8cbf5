//! ISO 8601 durations as Sentinel's scheduled rules take them (`PT5M`, `PT1H`, `P1D`,
//! `P1DT12H`): days, hours, minutes, seconds. Years, months and weeks are refused — a
//! month has no fixed length, and Sentinel's own examples never use them.

use std::fmt;

use anyhow::{bail, Context};

/// A parsed duration; keeps the text it came from so templates show what the author wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoDuration {
    pub text: String,
    pub seconds: u64,
}

impl IsoDuration {
    pub fn parse(text: &str) -> anyhow::Result<IsoDuration> {
        let seconds = parse_seconds(text).with_context(|| {
            format!("{text:?} is not an ISO 8601 duration like PT5M, PT1H, P1D or P1DT12H")
        })?;
        Ok(IsoDuration {
            text: text.to_string(),
            seconds,
        })
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_seconds(text: &str) -> anyhow::Result<u64> {
    let Some(rest) = text.strip_prefix('P') else {
        bail!("it must start with P");
    };
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                bail!("nothing after T");
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut parts = 0;
    // Units must appear in this order, each at most once.
    for (part, units) in [
        (Some(date), &[('D', 86_400u64)][..]),
        (time, &[('H', 3_600), ('M', 60), ('S', 1)][..]),
    ] {
        let Some(mut s) = part else { continue };
        let mut allowed = units;
        while !s.is_empty() {
            let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                bail!("expected a number at {s:?}");
            }
            let n: u64 = s[..digits].parse().context("number too large")?;
            let Some(unit) = s[digits..].chars().next() else {
                bail!("the number {n} has no unit");
            };
            let Some(pos) = allowed.iter().position(|(u, _)| *u == unit) else {
                bail!("unit {unit:?} is not allowed here (or out of order); use D before T, then H, M, S");
            };
            total = n
                .checked_mul(allowed[pos].1)
                .and_then(|v| v.checked_add(total))
                .context("duration too large")?;
            allowed = &allowed[pos + 1..];
            parts += 1;
            s = &s[digits + unit.len_utf8()..];
        }
    }
    if parts == 0 {
        bail!("no component");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_sentinel_uses() {
        for (t, s) in [
            ("PT5M", 300),
            ("PT1H", 3_600),
            ("PT6H", 21_600),
            ("P1D", 86_400),
            ("P14D", 1_209_600),
            ("P1DT12H", 129_600),
            ("PT1H30M", 5_400),
            ("PT90S", 90),
        ] {
            assert_eq!(IsoDuration::parse(t).unwrap().seconds, s, "{t}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        for t in [
            "", "P", "PT", "1H", "PT1", "PTH", "P1H", "PT1D", "P1M", "P1Y", "P1W", "PT1M1H",
            "PT1H1H", "pt1h", "PT-1H", "PT1.5H", "P1DT", "PT1H ",
        ] {
            assert!(IsoDuration::parse(t).is_err(), "{t:?} accepted");
        }
    }
}
