//! Billing counters (privacy promises P15, P16): one row per company, calendar month (UTC) and
//! metric, incremented in the same transaction as what it counts. Counts only, no personal data.

use chrono::{DateTime, Datelike};

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

/// The month (`YYYY-MM`, UTC) of a Unix-millisecond time.
pub fn month_of(at_ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    format!("{:04}-{:02}", t.year(), t.month())
}

/// Adds `n` to `metric` of `company` for the month of `at_ms`.
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
    q!(
        ex,
        exec,
        "INSERT INTO usage_counters (company_id, month, metric, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (company_id, month, metric) DO UPDATE SET value = usage_counters.value + $4",
        company,
        month_of(at_ms),
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

#[cfg(test)]
mod tests {
    use super::month_of;

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(month_of(0), "1970-01");
        // 2026-11-30T23:59:59.999Z and the next millisecond.
        assert_eq!(month_of(1_796_083_199_999), "2026-11");
        assert_eq!(month_of(1_796_083_200_000), "2026-12");
    }
}
