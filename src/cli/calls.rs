//! `masterz admin` commands for calls: call groups, and the call log of a company.

use anyhow::{Context as _, bail};
use clap::Args;

use crate::domain::normalize_email;
use crate::domain::phone::normalize_e164;
use crate::store::routing::{
    self, DEFAULT_NO_ANSWER_STATUS, DEFAULT_RING_TIMEOUT_SECS, GroupSettings, RoutingError,
};
use crate::store::{self, StoreError, audit::Actor};

#[derive(Args)]
pub(super) struct CreateCallGroup {
    /// Company slug.
    #[arg(long)]
    company: String,
    /// Name, unique in the company.
    #[arg(long)]
    name: String,
    /// A number (E.164) that rings the group; one of the company's trunks' DIDs (repeatable).
    #[arg(long, value_name = "E164")]
    did: Vec<String>,
    /// The email of an agent rung by the group (repeatable).
    #[arg(long, value_name = "EMAIL")]
    member: Vec<String>,
    /// How long the agents ring, seconds (5–600).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_RING_TIMEOUT_SECS)]
    ring_timeout: i64,
    /// SIP status the caller gets when nobody answered and there is no overflow (400–699).
    #[arg(long, value_name = "CODE", default_value_t = DEFAULT_NO_ANSWER_STATUS)]
    no_answer_status: i64,
    /// The name of the group rung next when nobody answered.
    #[arg(long, value_name = "GROUP_NAME")]
    overflow: Option<String>,
}

#[derive(Args)]
pub(super) struct ListCalls {
    /// Company slug.
    #[arg(long)]
    company: String,
    /// How many of the newest calls (1–1000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

/// The command-line flag behind a field that routing refused.
fn flag_of(field: &str) -> &'static str {
    match field.split('[').next().unwrap_or(field) {
        "name" => "--name",
        "ring_timeout_secs" => "--ring-timeout",
        "no_answer_status" => "--no-answer-status",
        "overflow_group_id" => "--overflow",
        "members" => "--member",
        "dids" => "--did",
        _ => "call group setting",
    }
}

fn refused(e: RoutingError, name: &str) -> anyhow::Error {
    match e {
        RoutingError::Invalid(f) => anyhow::anyhow!("invalid {}: {}", flag_of(&f.field), f.message),
        RoutingError::Store(StoreError::Conflict(m)) if m.starts_with("DID") => {
            anyhow::anyhow!("{m}")
        }
        RoutingError::Store(StoreError::Conflict(_)) => {
            anyhow::anyhow!("a call group named {name:?} exists")
        }
        RoutingError::Store(other) => other.into(),
    }
}

pub(super) async fn create_call_group(db: &store::Db, args: CreateCallGroup) -> anyhow::Result<()> {
    let CreateCallGroup {
        company,
        name,
        did,
        member,
        ring_timeout,
        no_answer_status,
        overflow,
    } = args;
    let name = name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let dids = did
        .iter()
        .map(|d| normalize_e164(d).with_context(|| format!("invalid --did {d:?}: not E.164")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut tx = db.begin().await?;
    let c = store::companies::by_slug(&mut tx.ex(), &company)
        .await?
        .with_context(|| format!("no company with slug {company:?}"))?;
    let mut members = Vec::with_capacity(member.len());
    for m in &member {
        let email = normalize_email(m).with_context(|| format!("invalid --member {m:?}"))?;
        let user = store::users::user_by_email(&mut tx.ex(), c.id, &email)
            .await?
            .with_context(|| format!("no user {email} in company {company:?}"))?;
        members.push(user.id);
    }
    let overflow_group_id = match &overflow {
        Some(o) => Some(
            routing::group_by_name(&mut tx.ex(), c.id, o)
                .await?
                .with_context(|| format!("invalid --overflow: no call group named {o:?}"))?
                .id,
        ),
        None => None,
    };
    let settings = GroupSettings {
        name,
        ring_timeout_secs: ring_timeout,
        no_answer_status,
        overflow_group_id,
    };
    let group = routing::create_group(&mut tx.ex(), c.id, &settings)
        .await
        .map_err(|e| refused(e, name))?;
    routing::set_members(&mut tx.ex(), c.id, group.id, &members)
        .await
        .map_err(|e| refused(e, name))?;
    let group = routing::set_dids(&mut tx.ex(), c.id, group.id, &dids)
        .await
        .map_err(|e| refused(e, name))?
        .context("the new call group vanished")?;
    store::audit::record(
        &mut tx.ex(),
        c.id,
        &Actor::cli(),
        "create",
        "call_group",
        Some(group.id),
        &serde_json::to_value(&group)?,
    )
    .await?;
    tx.commit().await?;
    println!("{}", group.id);
    Ok(())
}

/// `secs` as `m:ss` (or `h:mm:ss`).
fn duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

pub(super) async fn list_calls(db: &store::Db, args: ListCalls) -> anyhow::Result<()> {
    if !(1..=1000).contains(&args.limit) {
        bail!("invalid --limit {}: use 1–1000", args.limit);
    }
    let mut conn = db.conn().await?;
    let c = store::companies::by_slug(&mut conn.ex(), &args.company)
        .await?
        .with_context(|| format!("no company with slug {:?}", args.company))?;
    let filter = store::calls::CallFilter {
        limit: args.limit,
        ..Default::default()
    };
    let calls = store::calls::list(&mut conn.ex(), c.id, &filter).await?;
    let users = store::users::list_users(&mut conn.ex(), c.id).await?;
    let agent_of = |id: Option<crate::domain::UserId>| {
        id.and_then(|id| users.iter().find(|u| u.id == id))
            .map_or_else(|| "-".to_owned(), |u| u.email.clone())
    };
    println!(
        "{:>6}  {:<24}  {:<8}  {:<9}  {:<28}  {:<28}  {:>8}  AGENT",
        "ID", "STARTED", "DIR", "STATUS", "FROM", "TO", "TALK"
    );
    for call in &calls {
        let talk = match (call.answered_at, call.ended_at) {
            (Some(a), Some(e)) => duration(e.0 - a.0),
            _ => "-".to_owned(),
        };
        println!(
            "{:>6}  {:<24}  {:<8}  {:<9}  {:<28}  {:<28}  {:>8}  {}",
            call.id,
            call.started_at.to_rfc3339(),
            call.direction,
            call.status,
            clip(&call.from_uri, 28),
            clip(&call.to_uri, 28),
            talk,
            agent_of(call.agent_user_id),
        );
    }
    if calls.is_empty() {
        println!("(no calls)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{clip, duration};

    #[test]
    fn durations_and_clipping() {
        assert_eq!(duration(65_400), "1:05");
        assert_eq!(duration(3_725_000), "1:02:05");
        assert_eq!(duration(-5), "0:00");
        assert_eq!(clip("sip:alice@example.com", 10), "sip:alice…");
        assert_eq!(clip("short", 10), "short");
    }
}
