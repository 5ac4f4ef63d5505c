//! `masterz admin close-company`: closes a company (P20) from the command line, as
//! `POST /api/v1/company/close` does, and says when its data will be deleted.

use anyhow::{Context as _, bail};
use clap::Args;

use crate::config::Config;
use crate::domain::Timestamp;
use crate::lifecycle::{closure, erase::Place};
use crate::store::{self, audit::Actor};

/// `masterz admin close-company`.
#[derive(Args)]
pub(super) struct CloseCompany {
    /// Company slug.
    #[arg(long)]
    company: String,
}

/// Closes the company: its logins, sessions, API tokens and SIP registrations end at once (a
/// running server also stops routing its channels within seconds). With
/// `company_deletion_days = 0` its data is deleted here and now; otherwise the server's hourly
/// job deletes it when the period has passed.
pub(super) async fn close_company(
    config: &Config,
    db: &store::Db,
    args: CloseCompany,
) -> anyhow::Result<()> {
    let company = {
        let mut conn = db.conn().await?;
        store::companies::by_slug(&mut conn.ex(), &args.company)
            .await?
            .with_context(|| format!("no company with slug {:?}", args.company))?
    };
    let days = config.company_deletion_days;
    let Some(closure) = closure::close(db, company.id, days, &Actor::cli()).await? else {
        bail!("company {:?} is already closed", company.slug);
    };
    let access = closure.access_ended;
    println!(
        "closed company {} slug={}: ended {} sessions, {} API tokens, {} invitations, {} SIP registrations",
        company.id,
        company.slug,
        access.sessions,
        access.api_tokens,
        access.invitations,
        access.sip_registrations
    );
    if closure.delete_after > store::now_ms() {
        println!(
            "all its data will be deleted after {} ({days} days; company_deletion_days)",
            Timestamp(closure.delete_after).to_rfc3339()
        );
        return Ok(());
    }
    let place = Place {
        db,
        data_dir: &config.data_dir,
        gate: None,
    };
    let purged = closure::purge_due(place).await?;
    match purged.iter().find(|(id, _)| *id == company.id) {
        Some((_, p)) => println!(
            "deleted all its data now (company_deletion_days = 0): {} users, {} customers, {} messages, {} calls, {} recordings, {} channel accounts, {} audit entries",
            p.users,
            p.customers,
            p.messages,
            p.calls,
            p.recordings,
            p.channel_accounts,
            p.audit_logs
        ),
        None => println!("its data is due for deletion now; the server's job deletes it"),
    }
    Ok(())
}
