//! Billing counters (privacy promises P15, P16): one row per company, calendar month and metric,
//! incremented in the same transaction as what it counts. Counts only, no personal data.
//!
//! A company's months are calendar months in its own time zone (`companies.time_zone`, P2: the
//! zone is used for reports): a message at 23:30 UTC on 30 November is December's in Berlin.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::{CompanyId, Ex, Result, q};

/// Messages received from customers.
pub const MESSAGES_IN: &str = "messages_in";
/// Messages sent to customers (agents' replies, auto-replies, echoes of the business's own sends).
pub const MESSAGES_OUT: &str = "messages_out";
/// AI reply suggestions produced.
pub const AI_REPLIES: &str = "ai_replies";
/// Seconds of answered calls.
pub const CALL_SECONDS: &str = "call_seconds";
/// Seconds of recorded audio.
pub const RECORDED_SECONDS: &str = "recorded_seconds";
/// Distinct users of the company who logged in or used a session or API token in the month:
/// not a counter, computed by [`active_users`].
pub const ACTIVE_USERS: &str = "active_users";

/// The counted metrics, in the order reports show them.
pub const COUNTERS: &[&str] = &[
    MESSAGES_IN,
    MESSAGES_OUT,
    AI_REPLIES,
    CALL_SECONDS,
    RECORDED_SECONDS,
];

/// Every metric a plan can cap: the counters and [`ACTIVE_USERS`].
pub const LIMITABLE: &[&str] = &[
    ACTIVE_USERS,
    MESSAGES_IN,
    MESSAGES_OUT,
    AI_REPLIES,
    CALL_SECONDS,
    RECORDED_SECONDS,
];

/// The month (`YYYY-MM`, UTC) of a Unix-millisecond time.
pub fn month_of(at_ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    format!("{:04}-{:02}", t.year(), t.month())
}

/// A time zone by its IANA name; UTC when the name is not one (the API only stores valid ones).
pub fn parse_zone(name: &str) -> Tz {
    name.parse().unwrap_or(chrono_tz::UTC)
}

/// The month (`YYYY-MM`) of a Unix-millisecond time in `zone`.
pub fn month_in(at_ms: i64, zone: Tz) -> String {
    let t = DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .with_timezone(&zone);
    format!("{:04}-{:02}", t.year(), t.month())
}

/// The first and the one-past-last Unix millisecond of `month` (`YYYY-MM`) in `zone`.
pub fn month_bounds_in(month: &str, zone: Tz) -> Option<(i64, i64)> {
    let (from, to) = month_bounds(month)?;
    let local = |utc_ms: i64| {
        let naive = DateTime::from_timestamp_millis(utc_ms)?.naive_utc();
        // Midnight can fall in a DST gap in a few zones: the earliest instant that exists.
        zone.from_local_datetime(&naive)
            .earliest()
            .or_else(|| {
                zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.timestamp_millis())
    };
    Some((local(from)?, local(to)?))
}

/// Company time zones as last read, so that counting a message does not read its company's row
/// each time. An entry is trusted for [`ZONE_TTL`]; [`forget_zone`] drops it when the zone changes
/// in this process (another process's change is seen within the TTL).
static ZONES: LazyLock<Mutex<HashMap<CompanyId, (Tz, Instant)>>> = LazyLock::new(Mutex::default);
const ZONE_TTL: Duration = Duration::from_secs(60);

/// The time zone of `company`.
pub async fn zone(ex: &mut Ex<'_>, company: CompanyId) -> Result<Tz> {
    let cached = ZONES
        .lock()
        .ok()
        .and_then(|z| z.get(&company).copied())
        .filter(|(_, at)| at.elapsed() < ZONE_TTL);
    if let Some((zone, _)) = cached {
        return Ok(zone);
    }
    let name = q!(ex, scalar_opt String, "SELECT time_zone FROM companies WHERE id = $1", company)?;
    let zone = name.as_deref().map_or(chrono_tz::UTC, parse_zone);
    if let Ok(mut zones) = ZONES.lock() {
        zones.insert(company, (zone, Instant::now()));
    }
    Ok(zone)
}

/// Forgets the cached zone of `company` (its time zone was changed, or it was deleted).
pub fn forget_zone(company: CompanyId) {
    if let Ok(mut zones) = ZONES.lock() {
        zones.remove(&company);
    }
}

/// The month of `at_ms` in `company`'s time zone.
pub async fn company_month(ex: &mut Ex<'_>, company: CompanyId, at_ms: i64) -> Result<String> {
    Ok(month_in(at_ms, zone(ex, company).await?))
}

/// Adds `n` to `metric` of `company` for the month of `at_ms` (in the company's time zone).
pub async fn add(
    ex: &mut Ex<'_>,
    company: CompanyId,
    metric: &str,
    n: i64,
    at_ms: i64,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let month = company_month(ex, company, at_ms).await?;
    q!(
        ex,
        exec,
        "INSERT INTO usage_counters (company_id, month, metric, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (company_id, month, metric) DO UPDATE SET value = usage_counters.value + $4",
        company,
        month,
        metric,
        n
    )?;
    Ok(())
}

/// The value of `metric` for `company` in `month` (`YYYY-MM`); 0 when nothing was counted.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, month: &str, metric: &str) -> Result<i64> {
    Ok(q!(
        ex,
        scalar_opt i64,
        "SELECT value FROM usage_counters WHERE company_id = $1 AND month = $2 AND metric = $3",
        company,
        month,
        metric
    )?
    .unwrap_or(0))
}

/// Milliseconds as whole seconds, rounded up (a 0.2 s call is billed as 1 s); negative → 0.
pub fn seconds_ceil(ms: i64) -> i64 {
    if ms <= 0 {
        0
    } else {
        ms / 1000 + i64::from(ms % 1000 != 0)
    }
}

/// The first and the one-past-last Unix millisecond of `month` (`YYYY-MM`); `None` when it is
/// not a month.
pub fn month_bounds(month: &str) -> Option<(i64, i64)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    let start = NaiveDate::from_ymd_opt(y, m, 1)?;
    let end = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)?
    };
    let ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
    };
    Some((ms(start)?, ms(end)?))
}

/// The plan tier `companies.plan_tier` names for `company`.
pub async fn plan_tier(ex: &mut Ex<'_>, company: CompanyId) -> Result<String> {
    Ok(q!(
        ex,
        scalar String,
        "SELECT plan_tier FROM companies WHERE id = $1",
        company
    )?)
}

/// Distinct users of `company` active in `month` (`YYYY-MM`, the company's zone): a successful login in the
/// month, or a session or API token last used (or a session opened) in it.
///
/// Computed from the login history, sessions and tokens rather than counted: the login history
/// is exact for any month, while a session or token only keeps its latest use, so a user who
/// only kept using an old session through a past month and beyond is counted in the month of
/// that session's latest use (and in every month they logged in). For the current month the
/// count is exact. An unparseable month counts nobody.
pub async fn active_users(ex: &mut Ex<'_>, company: CompanyId, month: &str) -> Result<i64> {
    let zone = zone(ex, company).await?;
    let Some((from, to)) = month_bounds_in(month, zone) else {
        return Ok(0);
    };
    Ok(q!(
        ex,
        scalar i64,
        "SELECT COUNT(*) FROM (\
           SELECT user_id FROM login_events WHERE company_id = $1 AND outcome = 'success' \
             AND user_id IS NOT NULL AND created_at >= $2 AND created_at < $3 \
           UNION SELECT user_id FROM sessions WHERE company_id = $1 \
             AND ((last_seen_at >= $2 AND last_seen_at < $3) OR (created_at >= $2 AND created_at < $3)) \
           UNION SELECT user_id FROM api_tokens WHERE company_id = $1 \
             AND last_used_at >= $2 AND last_used_at < $3\
         ) AS active",
        company,
        from,
        to
    )?)
}

/// Every counter of `company` for `month`, as (metric, value); metrics never counted are absent.
pub async fn all(ex: &mut Ex<'_>, company: CompanyId, month: &str) -> Result<Vec<(String, i64)>> {
    Ok(q!(
        ex,
        all(String, i64),
        "SELECT metric, value FROM usage_counters WHERE company_id = $1 AND month = $2 ORDER BY metric",
        company,
        month
    )?)
}

// Operator-level aggregates (P16). These are the only functions here without a `CompanyId`:
// they read across companies, and each returns rows without any company's id, name or slug, so
// that nothing but counts can be made of them.

/// Companies counted by (plan tier, status): `(plan_tier, status, companies)`.
pub async fn companies_by_tier(ex: &mut Ex<'_>) -> Result<Vec<(String, String, i64)>> {
    Ok(q!(
        ex,
        all(String, String, i64),
        "SELECT plan_tier, status, COUNT(*) FROM companies GROUP BY plan_tier, status"
    )?)
}

/// Every non-zero counter of `month`, one row per company and metric, anonymous:
/// `(plan tier of the company, metric, value)`.
pub async fn month_values(ex: &mut Ex<'_>, month: &str) -> Result<Vec<(String, String, i64)>> {
    Ok(q!(
        ex,
        all(String, String, i64),
        "SELECT c.plan_tier, u.metric, u.value FROM usage_counters u \
         JOIN companies c ON c.id = u.company_id WHERE u.month = $1 AND u.value <> 0",
        month
    )?)
}

/// The active users (as [`active_users`] counts them) of every company with any in `month`,
/// anonymous: `(plan tier of the company, active users)`.
pub async fn month_active_users(ex: &mut Ex<'_>, month: &str) -> Result<Vec<(String, i64)>> {
    let Some((from, to)) = month_bounds(month) else {
        return Ok(Vec::new());
    };
    Ok(q!(
        ex,
        all(String, i64),
        "SELECT c.plan_tier, a.n FROM (\
           SELECT company_id, COUNT(*) AS n FROM (\
             SELECT company_id, user_id FROM login_events WHERE outcome = 'success' \
               AND company_id IS NOT NULL AND user_id IS NOT NULL \
               AND created_at >= $1 AND created_at < $2 \
             UNION SELECT company_id, user_id FROM sessions \
               WHERE (last_seen_at >= $1 AND last_seen_at < $2) OR (created_at >= $1 AND created_at < $2) \
             UNION SELECT company_id, user_id FROM api_tokens \
               WHERE last_used_at >= $1 AND last_used_at < $2\
           ) AS pairs GROUP BY company_id\
         ) AS a JOIN companies c ON c.id = a.company_id",
        from,
        to
    )?)
}

#[cfg(test)]
mod tests {
    use super::{month_bounds, month_bounds_in, month_in, month_of, parse_zone};

    #[test]
    fn a_companys_months_are_its_own_time_zones() {
        let berlin = parse_zone("Europe/Berlin");
        // 2026-11-30T23:30Z is 00:30 on 1 December in Berlin, 18:30 on 30 November in New York.
        let at = 1_796_081_400_000;
        assert_eq!(month_in(at, berlin), "2026-12");
        assert_eq!(month_in(at, parse_zone("America/New_York")), "2026-11");
        assert_eq!(month_in(at, parse_zone("not a zone")), "2026-11");
        // December in Berlin starts at 23:00 UTC the day before (CET, UTC+1).
        let (from, to) = month_bounds_in("2026-12", berlin).expect("a month");
        assert_eq!(from, 1_796_083_200_000 - 3_600_000);
        assert_eq!(month_in(from, berlin), "2026-12");
        assert_eq!(month_in(from - 1, berlin), "2026-11");
        assert_eq!(month_in(to, berlin), "2027-01");
        // A summer month (CEST, UTC+2).
        let (july, _) = month_bounds_in("2026-07", berlin).expect("a month");
        assert_eq!(
            july,
            month_bounds("2026-07").expect("a month").0 - 7_200_000
        );
    }

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(month_of(0), "1970-01");
        // 2026-11-30T23:59:59.999Z and the next millisecond.
        assert_eq!(month_of(1_796_083_199_999), "2026-11");
        assert_eq!(month_of(1_796_083_200_000), "2026-12");
    }

    #[test]
    fn month_bounds_cover_the_calendar_month() {
        assert_eq!(
            month_bounds("2026-11"),
            Some((1_793_491_200_000, 1_796_083_200_000))
        );
        assert_eq!(
            month_bounds("2026-12").map(|b| b.0),
            Some(1_796_083_200_000)
        );
        assert_eq!(
            month_of(month_bounds("2026-12").expect("a month").1),
            "2027-01"
        );
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "",
            "2026-11-01",
            "+026-11",
        ] {
            assert_eq!(month_bounds(bad), None, "{bad}");
        }
    }
}
