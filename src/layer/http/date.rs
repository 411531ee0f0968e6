//! HTTP dates (RFC 9110 §5.6.7), read as caches read them.

use http::{HeaderMap, HeaderName, HeaderValue};

/// An HTTP date in one of the three formats of RFC 9110 §5.6.7 (IMF-fixdate,
/// RFC 850, asctime), laid out exactly as there but read as caches do: names
/// in any case, and the weekday not checked against the date. Anything else
/// (other zones, missing comma, extra spaces, short fields) is invalid.
pub(crate) fn date_from(value: &HeaderValue) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let text = value.to_str().ok()?;
    let num = |t: &str, len: usize| -> Option<u32> {
        if t.len() == len && t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let month = |m: &str| {
        MONTHS
            .iter()
            .position(|x| x.eq_ignore_ascii_case(m))
            .map(|i| i as u32 + 1)
    };
    let time = |t: &str| -> Option<(u32, u32, u32)> {
        let mut p = t.split(':');
        let hms = (num(p.next()?, 2)?, num(p.next()?, 2)?, num(p.next()?, 2)?);
        p.next().is_none().then_some(hms)
    };
    let weekday = |w: &str, long: bool| {
        w.len() >= 3 && w.bytes().all(|b| b.is_ascii_alphabetic()) && (w.len() > 3) == long
    };
    let gmt = |z: &str| z.eq_ignore_ascii_case("gmt");
    let short_day = |w: &str| w.strip_suffix(',').is_some_and(|w| weekday(w, false));
    let long_day = |w: &str| w.strip_suffix(',').is_some_and(|w| weekday(w, true));
    let parts: Vec<&str> = text.split(' ').collect();
    let (day, month, year, (h, m, s)) = match parts[..] {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [wd, d, mo, y, t, z] if short_day(wd) && gmt(z) => {
            (num(d, 2)?, month(mo)?, num(y, 4)?, time(t)?)
        }
        // Sunday, 06-Nov-94 08:49:37 GMT
        [wd, dmy, t, z] if long_day(wd) && gmt(z) => {
            let mut f = dmy.split('-');
            let (d, mo, y) = (num(f.next()?, 2)?, month(f.next()?)?, num(f.next()?, 2)?);
            if f.next().is_some() {
                return None;
            }
            let y = if y >= 70 { 1900 + y } else { 2000 + y };
            (d, mo, y, time(t)?)
        }
        // Sun Nov  6 08:49:37 1994
        [wd, mo, "", d, t, y] if weekday(wd, false) => {
            (num(d, 1)?, month(mo)?, num(y, 4)?, time(t)?)
        }
        [wd, mo, d, t, y] if weekday(wd, false) => (num(d, 2)?, month(mo)?, num(y, 4)?, time(t)?),
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (i64::from(year) - 1, i64::from(month) + 9)
    } else {
        (i64::from(year), i64::from(month) - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + i64::from(day) - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s);
    u64::try_from(secs).ok()?.checked_mul(1000)
}

pub(super) fn header_date_ms(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    date_from(headers.get(name)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{status::Reason, test_support::*};
    use super::*;
    use crate::rules::CacheRule;

    #[test]
    fn lenient_parsing() {
        let r = rule(
            CacheRule::get("/")
                .response_driven()
                .ttl(Duration::from_secs(7200)),
        );
        let check = |h: &[(&str, &str)]| fresh_for(&r, h);
        assert_eq!(
            check(&[("cache-control", "max-age=3600, max-age=0")]),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            check(&[("cache-control", "max-age=0, max-age=3600")]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check(&[("cache-control", "max-age=3600.5")]),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            check(&[("cache-control", "max-age =3600")]),
            Err(Reason::NoFreshness)
        );
        assert_eq!(
            check(&[("cache-control", "max-age= 3600")]),
            Err(Reason::NoFreshness)
        );
        let expires = |e: &str| {
            let e = HeaderValue::from_str(e).unwrap();
            date_from(&e).map(|ms| ms / 1000)
        };
        let canonical = Some(784_111_777);
        assert_eq!(expires("Sun, 06 Nov 1994 08:49:37 GMT"), canonical);
        assert_eq!(expires("sun, 06 nov 1994 08:49:37 gmt"), canonical);
        assert_eq!(
            expires("Thu, 06 Nov 1994 08:49:37 GMT"),
            canonical,
            "weekday ignored"
        );
        assert_eq!(expires("Sunday, 06-Nov-94 08:49:37 GMT"), canonical);
        assert_eq!(expires("Sun Nov  6 08:49:37 1994"), canonical);
        assert_eq!(expires("Sun Nov 06 08:49:37 1994"), canonical);
        for invalid in [
            "not a date",
            "0",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 AEST",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
        ] {
            assert_eq!(expires(invalid), None, "{invalid}");
        }
    }
}
