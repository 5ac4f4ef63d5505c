//! Billing (privacy promise P15): plans with per-month limits from the configuration, and the
//! check that stops AI suggestions once a company's plan is used up. Calls and messages are
//! never stopped by a limit: they are counted, and the usage API shows them as over the limit.
//!
//! A plan names a cap for some of the metrics of [`crate::store::usage`] (the counters plus
//! `active_users`); a metric a plan does not name is unlimited. `companies.plan_tier` picks the
//! plan; a tier that names no configured plan is billed as the `free` plan, so that a typo in a
//! tier never gives away unlimited use.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::config::FromEnv;
use crate::store::{self, CompanyId, Ex, usage};

mod report;

pub use report::{
    BUCKETS, Bucket, CompanyCounts, MetricTotals, MetricUsage, OperatorStats, UsageReport,
    load_operator_stats, metric_usage, operator_stats, usage_report,
};

/// The plan a tier without a configured plan falls back to.
pub const FALLBACK_PLAN: &str = "free";

/// The caps of one plan: metric → largest value allowed in a calendar month.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    limits: BTreeMap<String, u64>,
}

impl Plan {
    /// A plan with the given caps (metric names are not checked here; see [`Plans::parse_env`]).
    pub fn new<'a>(limits: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        Self {
            limits: limits.into_iter().map(|(m, n)| (m.to_owned(), n)).collect(),
        }
    }

    /// The cap of `metric`; `None`: unlimited.
    pub fn limit(&self, metric: &str) -> Option<u64> {
        self.limits.get(metric).copied()
    }

    /// Every capped metric with its cap.
    pub fn limits(&self) -> impl Iterator<Item = (&str, u64)> {
        self.limits.iter().map(|(m, n)| (m.as_str(), *n))
    }
}

/// The configured plans by name: the built-in `free`, `pro` and `enterprise`, each replaced by a
/// configured plan of the same name, plus any other configured plans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plans {
    plans: BTreeMap<String, Plan>,
}

impl Default for Plans {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Plans {
    /// The built-in plans: `free` and `pro` with caps, `enterprise` unlimited.
    pub fn builtin() -> Self {
        let mut plans = BTreeMap::new();
        plans.insert(
            "free".to_owned(),
            Plan::new([
                (usage::ACTIVE_USERS, 3),
                (usage::MESSAGES_IN, 1_000),
                (usage::MESSAGES_OUT, 1_000),
                (usage::AI_REPLIES, 100),
                (usage::CALL_SECONDS, 100 * 60),
                (usage::RECORDED_SECONDS, 60 * 60),
            ]),
        );
        plans.insert(
            "pro".to_owned(),
            Plan::new([
                (usage::ACTIVE_USERS, 50),
                (usage::MESSAGES_IN, 100_000),
                (usage::MESSAGES_OUT, 100_000),
                (usage::AI_REPLIES, 10_000),
                (usage::CALL_SECONDS, 10_000 * 60),
                (usage::RECORDED_SECONDS, 5_000 * 60),
            ]),
        );
        plans.insert("enterprise".to_owned(), Plan::default());
        Self { plans }
    }

    /// The plan of a company whose tier is `tier`, with the name it is billed under: the plan
    /// of that name, else the [`FALLBACK_PLAN`]. `None` cannot happen with plans built here (the
    /// configuration replaces built-in plans but never removes one); it would mean no caps.
    pub fn for_tier<'a>(&'a self, tier: &'a str) -> (&'a str, Option<&'a Plan>) {
        match self.plans.get(tier) {
            Some(plan) => (tier, Some(plan)),
            None => (FALLBACK_PLAN, self.plans.get(FALLBACK_PLAN)),
        }
    }

    /// The plan named `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    /// Every plan name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    /// Adds `plan` as `name`, replacing a plan of that name. The name must be 1–64 characters
    /// of `a-z`, `0-9` and `-`: what `masterz admin update-company --plan-tier` accepts.
    pub fn insert(&mut self, name: &str, plan: Plan) -> Result<(), String> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "plan name {name:?} must be 1–64 characters of a-z, 0-9 and -"
            ));
        }
        self.plans.insert(name.to_owned(), plan);
        Ok(())
    }

    /// Parses the compact environment form: plans separated by `;`, each `NAME:` followed by
    /// `METRIC=LIMIT` pairs separated by `,` (`free:ai_replies=100,active_users=3;pro:`). An
    /// empty plan (`enterprise:`) is unlimited. The result is the built-in plans overlaid with
    /// these.
    pub fn parse_env(text: &str) -> Result<Self, String> {
        let mut plans = Self::builtin();
        for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, caps) = item
                .split_once(':')
                .ok_or_else(|| format!("expected NAME:METRIC=LIMIT,… in {item:?}"))?;
            let name = name.trim();
            let mut limits = BTreeMap::new();
            for pair in caps.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (metric, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("plan {name}: expected METRIC=LIMIT, got {pair:?}"))?;
                let metric = check_metric(name, metric.trim())?;
                let value = value.trim();
                let limit = value.parse::<u64>().map_err(|_| {
                    format!(
                        "plan {name}: the limit of {metric} must be a whole number ≥ 0, got {value:?}"
                    )
                })?;
                if limits.insert(metric.to_owned(), limit).is_some() {
                    return Err(format!("plan {name}: {metric} is given twice"));
                }
            }
            plans.insert(name, Plan { limits })?;
        }
        Ok(plans)
    }
}

/// Checks that `metric` is one a plan can cap.
fn check_metric<'a>(plan: &str, metric: &'a str) -> Result<&'a str, String> {
    if usage::LIMITABLE.contains(&metric) {
        Ok(metric)
    } else {
        Err(format!(
            "plan {plan}: unknown metric {metric:?} (expected one of {})",
            usage::LIMITABLE.join(", ")
        ))
    }
}

impl FromEnv for Plans {
    fn from_env(text: &str) -> Result<Self, String> {
        Self::parse_env(text)
    }
}

impl<'de> Deserialize<'de> for Plans {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Read loosely, then check every value, so that the error names the plan and the metric.
        let raw = BTreeMap::<String, BTreeMap<String, serde_json::Value>>::deserialize(d)?;
        let mut plans = Self::builtin();
        for (name, caps) in raw {
            let mut limits = BTreeMap::new();
            for (metric, value) in caps {
                let metric = check_metric(&name, &metric).map_err(D::Error::custom)?;
                let limit = value.as_u64().ok_or_else(|| {
                    D::Error::custom(format!(
                        "plans.{name}.{metric}: the limit must be a whole number ≥ 0, got {value}"
                    ))
                })?;
                limits.insert(metric.to_owned(), limit);
            }
            plans
                .insert(&name, Plan { limits })
                .map_err(D::Error::custom)?;
        }
        Ok(plans)
    }
}

impl fmt::Display for Plans {
    /// The compact environment form, which [`Plans::parse_env`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, plan)) in self.plans.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{name}:")?;
            for (j, (metric, limit)) in plan.limits().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{metric}={limit}")?;
            }
        }
        Ok(())
    }
}

/// Words for people for a metric's unit, as in "100 AI replies".
pub fn metric_label(metric: &str) -> &'static str {
    match metric {
        usage::MESSAGES_IN => "messages received",
        usage::MESSAGES_OUT => "messages sent",
        usage::AI_REPLIES => "AI replies",
        usage::CALL_SECONDS => "seconds of answered calls",
        usage::RECORDED_SECONDS => "seconds of recordings",
        usage::ACTIVE_USERS => "active users",
        _ => "units",
    }
}

/// Whether `used` has reached `limit`: nothing more of it is allowed in the month (so a cap of
/// 0 is reached from the start).
pub fn reached(limit: u64, used: i64) -> bool {
    // A negative count cannot happen (counters only grow); treat it as nothing used.
    u64::try_from(used).unwrap_or(0) >= limit
}

/// Whether `used` has reached `limit`, with the sentence saying so.
pub fn over_limit_reason(
    plan: &str,
    metric: &str,
    limit: u64,
    used: i64,
    month: &str,
) -> Option<String> {
    reached(limit, used).then(|| {
        format!(
            "the {plan} plan allows {limit} {} a month; {used} used in {month}",
            metric_label(metric)
        )
    })
}

/// The value of `metric` (a counter, or `active_users`) for `company` in `month`.
pub async fn used(
    ex: &mut Ex<'_>,
    company: CompanyId,
    month: &str,
    metric: &str,
) -> store::Result<i64> {
    if metric == usage::ACTIVE_USERS {
        usage::active_users(ex, company, month).await
    } else {
        usage::get(ex, company, month, metric).await
    }
}

/// `Some(reason)` when `company`'s plan caps `metric` (a `store::usage` metric name) and the month
/// of `at_ms` has reached the cap; the reason is a sentence for people, e.g.
/// "the free plan allows 100 AI replies a month; 100 used in 2026-11".
pub async fn limit_reached(
    ex: &mut crate::store::Ex<'_>,
    config: &crate::config::Config,
    company: crate::store::CompanyId,
    metric: &str,
    at_ms: i64,
) -> crate::store::Result<Option<String>> {
    let tier = usage::plan_tier(ex, company).await?;
    let (plan_name, plan) = config.plans.for_tier(&tier);
    let Some(limit) = plan.and_then(|p| p.limit(metric)) else {
        return Ok(None);
    };
    let month = usage::company_month(ex, company, at_ms).await?;
    let used = used(ex, company, &month, metric).await?;
    Ok(over_limit_reason(plan_name, metric, limit, used, &month))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config_from_toml(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("masterz.toml");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Config::load_with(Some(&path), &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn builtin_plans_and_the_fallback_for_unknown_tiers() {
        let plans = Plans::builtin();
        assert_eq!(
            plans.names().collect::<Vec<_>>(),
            ["enterprise", "free", "pro"]
        );
        let (name, free) = plans.for_tier("free");
        assert_eq!(name, "free");
        assert_eq!(free.and_then(|p| p.limit(usage::AI_REPLIES)), Some(100));
        let (name, ent) = plans.for_tier("enterprise");
        assert_eq!(name, "enterprise");
        assert_eq!(ent.map(|p| p.limits().count()), Some(0));
        // A tier with no plan is billed as free, never as unlimited.
        let (name, plan) = plans.for_tier("platinum-typo");
        assert_eq!(name, "free");
        assert_eq!(plan, free);
        assert_eq!(Config::defaults().plans, plans);
    }

    #[test]
    fn the_environment_form_overlays_the_builtin_plans() {
        let plans = Plans::parse_env(
            " free: ai_replies=5, active_users=2 ; team:messages_out=10;enterprise:",
        )
        .unwrap();
        let free = plans.get("free").unwrap();
        assert_eq!(free.limit(usage::AI_REPLIES), Some(5));
        assert_eq!(free.limit(usage::ACTIVE_USERS), Some(2));
        // Replaced as a whole: what the configured plan does not name is unlimited.
        assert_eq!(free.limit(usage::MESSAGES_IN), None);
        assert_eq!(
            plans.get("team").unwrap().limit(usage::MESSAGES_OUT),
            Some(10)
        );
        assert_eq!(plans.get("pro"), Plans::builtin().get("pro"));
        assert_eq!(Plans::parse_env(&plans.to_string()).unwrap(), plans);
        assert_eq!(Plans::parse_env("").unwrap(), Plans::builtin());
    }

    #[test]
    fn bad_plans_in_the_environment_name_the_culprit() {
        for (text, needle) in [
            ("free:ai_replies=-1", "whole number"),
            ("free:ai_replies=lots", "whole number"),
            ("free:ai_replies=1.5", "whole number"),
            ("free:ai_replys=1", "unknown metric \"ai_replys\""),
            ("free ai_replies=1", "expected NAME:METRIC=LIMIT"),
            ("free:ai_replies", "expected METRIC=LIMIT"),
            ("Free:ai_replies=1", "plan name \"Free\""),
            ("big_plan:ai_replies=1", "plan name \"big_plan\""),
            (":ai_replies=1", "plan name \"\""),
            ("free:ai_replies=1,ai_replies=2", "given twice"),
        ] {
            let err = Plans::parse_env(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let err = Config::load_with(None, &|name| {
            (name == "MASTERZ_PLANS").then(|| "free:ai_replies=-3".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("MASTERZ_PLANS"), "{err}");
    }

    #[test]
    fn plans_from_the_config_file() {
        let c = config_from_toml(
            "[plans.free]\nai_replies = 2\nmessages_out = 1000\n\n[plans.team]\ncall_seconds = 600\n",
        )
        .unwrap();
        let free = c.plans.get("free").unwrap();
        assert_eq!(free.limit(usage::AI_REPLIES), Some(2));
        assert_eq!(free.limit(usage::ACTIVE_USERS), None);
        assert_eq!(
            c.plans.get("team").unwrap().limit(usage::CALL_SECONDS),
            Some(600)
        );
        assert!(c.plans.get("enterprise").is_some());
        for (text, needle) in [
            ("[plans.free]\nai_replies = -1\n", "plans.free.ai_replies"),
            ("[plans.free]\nai_replies = \"100\"\n", "whole number"),
            ("[plans.free]\nai_replies = 2.5\n", "whole number"),
            ("[plans.free]\nminutes = 5\n", "unknown metric"),
            ("[plans.\"Big Plan\"]\nai_replies = 5\n", "plan name"),
            ("plans = 3\n", "plans"),
        ] {
            let err = config_from_toml(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_limit_is_reached_at_the_cap() {
        assert_eq!(
            over_limit_reason("free", usage::AI_REPLIES, 100, 99, "2026-11"),
            None
        );
        assert_eq!(
            over_limit_reason("free", usage::AI_REPLIES, 100, 100, "2026-11").as_deref(),
            Some("the free plan allows 100 AI replies a month; 100 used in 2026-11")
        );
        assert!(reached(100, 101));
        // A cap of 0 forbids the metric outright.
        assert!(reached(0, 0));
        assert!(!reached(1, -5));
    }

    #[test]
    fn seconds_are_also_shown_in_minutes_rounded_up() {
        let m = metric_usage(usage::CALL_SECONDS, 61, Some(90));
        assert_eq!((m.used_minutes, m.limit_minutes), (Some(2), Some(2)));
        assert!(!m.over_limit);
        let m = metric_usage(usage::RECORDED_SECONDS, 120, Some(120));
        assert_eq!((m.used_minutes, m.limit_minutes), (Some(2), Some(2)));
        assert!(m.over_limit);
        let m = metric_usage(usage::MESSAGES_IN, 7, None);
        assert_eq!(
            (m.used_minutes, m.limit_minutes, m.over_limit),
            (None, None, false)
        );
    }

    #[test]
    fn operator_stats_add_up() {
        let plans = Plans::parse_env("free:ai_replies=10,messages_out=0").unwrap();
        let companies = [
            ("free".to_owned(), "active".to_owned(), 3),
            ("pro".to_owned(), "active".to_owned(), 1),
            ("no-such-tier".to_owned(), "closed".to_owned(), 1),
        ];
        let values = [
            ("free".to_owned(), usage::AI_REPLIES.to_owned(), 10),
            ("free".to_owned(), usage::AI_REPLIES.to_owned(), 3),
            ("pro".to_owned(), usage::AI_REPLIES.to_owned(), 12_345),
            ("free".to_owned(), usage::MESSAGES_OUT.to_owned(), 1),
        ];
        let s = operator_stats(&plans, "2026-11", &companies, &values);
        assert_eq!(
            s.companies,
            CompanyCounts {
                total: 5,
                active: 4,
                closed: 1
            }
        );
        assert_eq!(
            s.plans.get("free"),
            Some(&4),
            "the unknown tier bills as free"
        );
        assert_eq!(s.plans.get("pro"), Some(&1));
        assert_eq!(s.plans.get("enterprise"), Some(&0));
        assert!(!s.plans.contains_key("no-such-tier"));
        // Over: the free company at its cap of 10, and pro (built-in cap 10 000) at 12 345.
        let ai = &s.metrics[usage::AI_REPLIES];
        assert_eq!(
            (ai.total, ai.companies_using, ai.companies_over_limit),
            (12_358, 3, 2)
        );
        let buckets: Vec<(i64, i64)> = ai.histogram.iter().map(|b| (b.from, b.companies)).collect();
        assert_eq!(
            buckets,
            [
                (0, 2),
                (1, 1),
                (10, 1),
                (100, 0),
                (1_000, 0),
                (10_000, 1),
                (100_000, 0),
                (1_000_000, 0)
            ]
        );
        assert_eq!(ai.histogram.last().map(|b| b.to), Some(None));
        // messages_out capped at 0 on free: all four free companies are over it, used or not.
        let out = &s.metrics[usage::MESSAGES_OUT];
        assert_eq!(
            (out.total, out.companies_using, out.companies_over_limit),
            (1, 1, 4)
        );
        for m in s.metrics.values() {
            assert_eq!(m.histogram.iter().map(|b| b.companies).sum::<i64>(), 5);
        }
        assert_eq!(s.metrics.len(), usage::LIMITABLE.len());
    }
}
