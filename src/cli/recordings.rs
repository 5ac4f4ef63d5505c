//! `masterz admin` commands for call recording: the company's and a trunk's switch, retention,
//! and a trunk's consent prompt. Every change is audited (actor `cli`).

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use sha2::Digest as _;

use crate::domain::ChannelKind;
use crate::domain::trunk::TrunkSettings;
use crate::store::{self, audit::Actor};

/// A recording switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    /// Record.
    On,
    /// Do not record.
    Off,
    /// A trunk only: follow the company.
    Inherit,
}

#[derive(Args)]
pub(super) struct SetRecording {
    /// Company slug.
    #[arg(long)]
    company: String,
    /// Set this trunk's override instead of the company's default.
    #[arg(long, value_name = "TRUNK_ID")]
    trunk: Option<i64>,
    /// `on`, `off`, or (for a trunk) `inherit`.
    #[arg(value_enum)]
    switch: Option<Switch>,
    /// Days to keep the company's recordings (1–36500).
    #[arg(long, value_name = "DAYS", conflicts_with = "keep_forever")]
    retention_days: Option<i64>,
    /// Keep the company's recordings until their call, customer or company is deleted.
    #[arg(long)]
    keep_forever: bool,
}

#[derive(Args)]
pub(super) struct SetConsentPrompt {
    /// Company slug.
    #[arg(long)]
    company: String,
    /// The trunk whose recorded calls hear the prompt.
    #[arg(long, value_name = "TRUNK_ID")]
    trunk: i64,
    /// The announcement: WAV, MP3, FLAC or Ogg Vorbis (at most 10 MB, 120 s).
    #[arg(long, value_name = "PATH", required_unless_present = "remove")]
    file: Option<std::path::PathBuf>,
    /// Remove the trunk's prompt.
    #[arg(long, conflicts_with = "file")]
    remove: bool,
}

/// Largest prompt file accepted.
pub(crate) const MAX_PROMPT_BYTES: usize = 10 * 1024 * 1024;

pub(super) async fn set_recording(db: &store::Db, args: SetRecording) -> anyhow::Result<()> {
    let SetRecording {
        company,
        trunk,
        switch,
        retention_days,
        keep_forever,
    } = args;
    if switch.is_none() && retention_days.is_none() && !keep_forever {
        bail!("say on, off or inherit, or --retention-days / --keep-forever");
    }
    if trunk.is_some() && (retention_days.is_some() || keep_forever) {
        bail!("retention is per company: drop --trunk");
    }
    if let Some(days) = retention_days
        && !(1..=36_500).contains(&days)
    {
        bail!("invalid --retention-days {days}: use 1 to 36500");
    }
    let mut tx = db.begin().await?;
    let c = store::companies::by_slug(&mut tx.ex(), &company)
        .await?
        .with_context(|| format!("no company with slug {company:?}"))?;
    let actor = Actor::cli();
    match trunk {
        Some(id) => {
            let account = store::channels::get(&mut tx.ex(), c.id, id)
                .await?
                .filter(|a| a.kind == ChannelKind::SipTrunk.as_str())
                .with_context(|| format!("no trunk {id} in company {company:?}"))?;
            let mut settings = TrunkSettings::from_json(&account.settings.0)
                .map_err(|e| anyhow::anyhow!("trunk {id}: stored settings invalid: {e}"))?;
            let value = match switch {
                Some(Switch::On) => Some(true),
                Some(Switch::Off) => Some(false),
                Some(Switch::Inherit) | None => None,
            };
            settings.recording = value;
            let json = settings.to_json();
            store::channels::update(&mut tx.ex(), c.id, id, None, None, Some(&json), None).await?;
            let action = match value {
                Some(true) => "recording_on",
                Some(false) => "recording_off",
                None => "recording_inherit",
            };
            store::audit::record(
                &mut tx.ex(),
                c.id,
                &actor,
                action,
                "channel_account",
                Some(id),
                &serde_json::json!({ "recording": value }),
            )
            .await?;
            tx.commit().await?;
            println!("trunk {id} recording={}", label(value));
        }
        None => {
            let enabled = match switch {
                Some(Switch::On) => Some(true),
                Some(Switch::Off) => Some(false),
                Some(Switch::Inherit) => bail!("inherit is for a trunk (--trunk)"),
                None => None,
            };
            let retention = if keep_forever {
                Some(None)
            } else {
                retention_days.map(Some)
            };
            let patch = store::companies::CompanyPatch {
                recording_enabled: enabled,
                recording_retention_days: retention,
                ..Default::default()
            };
            let updated = store::companies::update(&mut tx.ex(), c.id, &patch).await?;
            if let Some(on) = enabled
                && on != c.recording_enabled
            {
                let action = if on { "recording_on" } else { "recording_off" };
                store::audit::record(
                    &mut tx.ex(),
                    c.id,
                    &actor,
                    action,
                    "company",
                    Some(c.id.0),
                    &serde_json::json!({ "recording_enabled": on }),
                )
                .await?;
            }
            store::audit::record(
                &mut tx.ex(),
                c.id,
                &actor,
                "update",
                "company",
                Some(c.id.0),
                &serde_json::json!({ "recording_enabled": enabled,
                    "recording_retention_days": retention }),
            )
            .await?;
            tx.commit().await?;
            let keep = updated
                .recording_retention_days
                .map_or("forever".to_owned(), |d| format!("{d} days"));
            println!(
                "company {} recording={} keep={keep}",
                updated.slug,
                label(Some(updated.recording_enabled))
            );
        }
    }
    Ok(())
}

fn label(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "inherit",
    }
}

pub(super) async fn set_consent_prompt(
    db: &store::Db,
    args: SetConsentPrompt,
) -> anyhow::Result<()> {
    let SetConsentPrompt {
        company,
        trunk,
        file,
        remove,
    } = args;
    let upload = match &file {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if bytes.len() > MAX_PROMPT_BYTES {
                bail!("{} is larger than 10 MB", path.display());
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "prompt".to_owned());
            // Refuse what callers could not hear, now rather than at the first call.
            let ext = path.extension().and_then(|e| e.to_str());
            let pcm = masterz_recordings::decode_prompt(&bytes, ext)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some((name, bytes, pcm.len()))
        }
        None => None,
    };
    let mut tx = db.begin().await?;
    let c = store::companies::by_slug(&mut tx.ex(), &company)
        .await?
        .with_context(|| format!("no company with slug {company:?}"))?;
    let actor = Actor::cli();
    match upload {
        Some((name, bytes, samples)) => {
            let sha = hex::encode(sha2::Sha256::digest(&bytes));
            let now = store::now_ms();
            let ms = i64::try_from(samples / 8).unwrap_or(i64::MAX);
            let prompt = store::recordings::NewPrompt {
                filename: &name,
                content: &bytes,
                sha256: &sha,
                duration_ms: ms,
                at: now,
            };
            if !store::recordings::set_prompt(&mut tx.ex(), c.id, trunk, &prompt).await? {
                bail!("no trunk {trunk} in company {company:?}");
            }
            store::audit::record(
                &mut tx.ex(),
                c.id,
                &actor,
                "set_consent_prompt",
                "channel_account",
                Some(trunk),
                &serde_json::json!({ "filename": name, "sha256": sha, "bytes": bytes.len() }),
            )
            .await?;
            tx.commit().await?;
            println!(
                "trunk {trunk} consent prompt {name} ({:.1} s)",
                samples as f64 / 8000.0
            );
        }
        None => {
            debug_assert!(remove);
            let removed = store::recordings::delete_prompt(&mut tx.ex(), c.id, trunk).await?;
            if removed {
                store::audit::record(
                    &mut tx.ex(),
                    c.id,
                    &actor,
                    "remove_consent_prompt",
                    "channel_account",
                    Some(trunk),
                    &serde_json::json!({}),
                )
                .await?;
            }
            tx.commit().await?;
            println!(
                "trunk {trunk} consent prompt {}",
                if removed { "removed" } else { "none" }
            );
        }
    }
    Ok(())
}
