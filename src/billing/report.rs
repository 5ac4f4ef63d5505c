//! What a company has used against its plan (P15), and the operator's counts across companies
//! (P16): the latter carry counts only — no company's id, name or slug, no person's data.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Plans, reached, used};
use crate::config::Config;
use crate::store::{self, CompanyId, Ex, usage};

/// One metric of a month against the plan's cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MetricUsage {
    /// Used in the month (seconds for `call_seconds` and `recorded_seconds`).
    pub used: i64,
    /// The plan's cap; `null`: unlimited.
    pub limit: Option<u64>,
    /// Whether `used` has reached `limit`. AI suggestions stop then; calls and messages go on.
    pub over_limit: bool,
    /// For the seconds metrics: `used` in minutes, rounded up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_minutes: Option<i64>,
    /// For the seconds metrics: `limit` in minutes, rounded up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_minutes: Option<u64>,
}

/// A company's usage of one month.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// The plan the company is billed under (its `plan_tier`, or `free` when no plan has that
    /// name).
    pub plan: String,
    /// Every metric a plan can cap: `active_users`, `messages_in`, `messages_out`, `ai_replies`,
    /// `call_seconds`, `recorded_seconds`.
    pub metrics: BTreeMap<String, MetricUsage>,
}

fn is_seconds(metric: &str) -> bool {
    metric == usage::CALL_SECONDS || metric == usage::RECORDED_SECONDS
}

/// `used` of `metric` against `limit`.
pub fn metric_usage(metric: &str, used: i64, limit: Option<u64>) -> MetricUsage {
    let over_limit = limit.is_some_and(|l| reached(l, used));
    let seconds = is_seconds(metric);
    MetricUsage {
        used,
        limit,
        over_limit,
        used_minutes: seconds.then(|| used.max(0) / 60 + i64::from(used.max(0) % 60 != 0)),
        limit_minutes: if seconds {
            limit.map(|l| l.div_ceil(60))
        } else {
            None
        },
    }
}

/// `company`'s usage in `month` (`YYYY-MM`, already validated) against its plan.
pub async fn usage_report(
    ex: &mut Ex<'_>,
    config: &Config,
    company: CompanyId,
    month: &str,
) -> store::Result<UsageReport> {
    let tier = usage::plan_tier(ex, company).await?;
    let (plan_name, plan) = config.plans.for_tier(&tier);
    let mut metrics = BTreeMap::new();
    for &metric in usage::LIMITABLE {
        let n = used(ex, company, month, metric).await?;
        let limit = plan.and_then(|p| p.limit(metric));
        metrics.insert(metric.to_owned(), metric_usage(metric, n, limit));
    }
    Ok(UsageReport {
        month: month.to_owned(),
        plan: plan_name.to_owned(),
        metrics,
    })
}

/// Companies by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompanyCounts {
    /// Every company on the server.
    pub total: i64,
    /// Companies in use.
    pub active: i64,
    /// Closed companies whose data is not yet deleted.
    pub closed: i64,
}

/// Lower bounds of the histogram's buckets: a company falls in the last bucket whose bound is at
/// most its value (0, 1–9, 10–99, …, 1 000 000 and more).
pub const BUCKETS: &[i64] = &[0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

/// One bucket of a histogram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Smallest value in the bucket.
    pub from: i64,
    /// Largest value in the bucket; `null` for the last, open one.
    pub to: Option<i64>,
    /// Companies whose value falls in it.
    pub companies: i64,
}

/// One metric summed over every company.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetricTotals {
    /// Sum over all companies.
    pub total: i64,
    /// Companies with a value above 0.
    pub companies_using: i64,
    /// Companies whose value has reached their plan's cap.
    pub companies_over_limit: i64,
    /// How many companies used how much; the buckets' companies add up to every company.
    pub histogram: Vec<Bucket>,
}

/// The operator's view of a month: counts only (P16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperatorStats {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// Companies by status.
    pub companies: CompanyCounts,
    /// Companies by the plan they are billed under (configured plan names only: a tier that
    /// names no plan is counted under `free`, so no free-form tier text leaves).
    pub plans: BTreeMap<String, i64>,
    /// Every metric a plan can cap, summed over the companies.
    pub metrics: BTreeMap<String, MetricTotals>,
}

/// Builds the operator's statistics from anonymous rows: `companies` as (tier, status, count),
/// `values` as (tier, metric, value) for each company with a non-zero value.
pub fn operator_stats(
    plans: &Plans,
    month: &str,
    companies: &[(String, String, i64)],
    values: &[(String, String, i64)],
) -> OperatorStats {
    let mut counts = CompanyCounts::default();
    let mut by_plan: BTreeMap<String, i64> = plans.names().map(|n| (n.to_owned(), 0)).collect();
    for (tier, status, n) in companies {
        counts.total += n;
        match status.as_str() {
            "closed" => counts.closed += n,
            _ => counts.active += n,
        }
        let (plan, _) = plans.for_tier(tier);
        *by_plan.entry(plan.to_owned()).or_default() += n;
    }
    let mut metrics = BTreeMap::new();
    for &metric in usage::LIMITABLE {
        let mut histogram: Vec<Bucket> = BUCKETS
            .iter()
            .enumerate()
            .map(|(i, &from)| Bucket {
                from,
                to: BUCKETS.get(i + 1).map(|next| next - 1),
                companies: 0,
            })
            .collect();
        let mut totals = MetricTotals {
            total: 0,
            companies_using: 0,
            companies_over_limit: 0,
            histogram: Vec::new(),
        };
        for (tier, _, value) in values.iter().filter(|(_, m, _)| m == metric) {
            let (_, plan) = plans.for_tier(tier);
            totals.total += value;
            if *value > 0 {
                totals.companies_using += 1;
            }
            if plan
                .and_then(|p| p.limit(metric))
                .is_some_and(|l| reached(l, *value))
            {
                totals.companies_over_limit += 1;
            }
            let bucket = BUCKETS
                .iter()
                .rposition(|&from| *value >= from)
                .unwrap_or(0);
            histogram[bucket].companies += 1;
        }
        // A company with no row used nothing: it belongs in the first bucket, or is over a cap
        // of 0.
        let without = (counts.total - totals.companies_using).max(0);
        histogram[0].companies += without;
        let zero_caps: i64 = companies
            .iter()
            .filter(|(tier, _, _)| plans.for_tier(tier).1.and_then(|p| p.limit(metric)) == Some(0))
            .map(|(_, _, n)| n)
            .sum();
        let zero_capped_using = values
            .iter()
            .filter(|(tier, m, v)| {
                m == metric
                    && *v > 0
                    && plans.for_tier(tier).1.and_then(|p| p.limit(metric)) == Some(0)
            })
            .count() as i64;
        totals.companies_over_limit += (zero_caps - zero_capped_using).max(0);
        totals.histogram = histogram;
        metrics.insert(metric.to_owned(), totals);
    }
    OperatorStats {
        month: month.to_owned(),
        companies: counts,
        plans: by_plan,
        metrics,
    }
}

/// Reads and builds the operator's statistics for `month` (`YYYY-MM`, already validated).
pub async fn load_operator_stats(
    ex: &mut Ex<'_>,
    config: &Config,
    month: &str,
) -> store::Result<OperatorStats> {
    let companies = usage::companies_by_tier(ex).await?;
    let mut values = usage::month_values(ex, month).await?;
    values.extend(
        usage::month_active_users(ex, month)
            .await?
            .into_iter()
            .map(|(tier, n)| (tier, usage::ACTIVE_USERS.to_owned(), n)),
    );
    Ok(operator_stats(&config.plans, month, &companies, &values))
}
