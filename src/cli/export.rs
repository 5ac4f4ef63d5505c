//! `masterz export --company SLUG --out FILE`: a company's data export (P26) written to a file,
//! with a progress bar on stderr and a summary on stdout. Audited (`export`, actor `cli`).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::app;
use crate::config::Config;
use crate::export::{self, Progress};
use crate::store::{self, audit::Actor};

#[derive(Args)]
pub(super) struct ExportArgs {
    /// Company slug.
    #[arg(long)]
    company: String,
    /// The archive to write (`.tar.gz`). Written to a temporary file beside it and renamed into
    /// place once complete; an existing file is replaced.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(super) async fn run(config: Config, args: ExportArgs) -> anyhow::Result<()> {
    if args.out.is_dir() {
        bail!("cannot write {}: it is a directory", args.out.display());
    }
    let db = app::open_database(&config).await?;
    let result = export(&config, &db, &args).await;
    db.close().await;
    result
}

async fn export(config: &Config, db: &store::Db, args: &ExportArgs) -> anyhow::Result<()> {
    let company = {
        let mut conn = db.conn().await?;
        store::companies::by_slug(&mut conn.ex(), &args.company)
            .await?
            .with_context(|| format!("no company with slug {:?}", args.company))?
    };
    let bar = Arc::new(Bar::new(std::io::stderr().is_terminal()));
    let reporter = bar.clone();
    let summary = export::write_company_archive(
        db,
        &config.data_dir,
        &company,
        &args.out,
        Arc::new(move |p| reporter.report(p)),
    )
    .await;
    bar.finish();
    let summary = summary?;
    let mut conn = db.conn().await?;
    store::audit::record(
        &mut conn.ex(),
        company.id,
        &Actor::cli(),
        "export",
        "company",
        Some(company.id.0),
        &serde_json::json!({"rows": summary.rows, "files": summary.files, "bytes": summary.bytes}),
    )
    .await?;
    println!(
        "exported company {}: {} entities, {} rows, {} files, {} bytes to {}",
        company.slug,
        summary.entities,
        summary.rows,
        summary.files,
        summary.bytes,
        summary.path.display()
    );
    Ok(())
}

/// The progress bar: one line redrawn with `\r` on a terminal (at most ten times a second),
/// plain lines otherwise (one per entity, then one per tenth of the files packed).
struct Bar {
    tty: bool,
    state: Mutex<BarState>,
}

struct BarState {
    last_draw: Option<Instant>,
    width: usize,
    packed_tenths: usize,
}

const BAR_CELLS: usize = 30;

impl Bar {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            state: Mutex::new(BarState {
                last_draw: None,
                width: 0,
                packed_tenths: 0,
            }),
        }
    }

    fn report(&self, p: Progress<'_>) {
        // A poisoned lock only means an earlier report panicked; drawing goes on.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (fraction, text, milestone) = match p {
            Progress::Rows {
                entity,
                index,
                of,
                rows,
                finished,
            } => (
                (index as f64 + if finished { 1.0 } else { 0.5 }) / of.max(1) as f64 / 2.0,
                format!("{entity}: {rows} rows"),
                finished,
            ),
            Progress::Packing { done, of, bytes } => {
                let tenths = done * 10 / of.max(1);
                let milestone = tenths > s.packed_tenths || done == of;
                if milestone {
                    s.packed_tenths = tenths;
                }
                (
                    0.5 + done as f64 / of.max(1) as f64 / 2.0,
                    format!("packing: {done}/{of} files, {bytes} bytes"),
                    milestone,
                )
            }
        };
        let percent = (fraction * 100.0).clamp(0.0, 100.0);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let now = Instant::now();
            let due = s
                .last_draw
                .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100));
            if !due && !milestone {
                return;
            }
            s.last_draw = Some(now);
            let filled = ((fraction * BAR_CELLS as f64) as usize).min(BAR_CELLS);
            let line = format!(
                "[{}{}] {percent:3.0}% {text}",
                "#".repeat(filled),
                " ".repeat(BAR_CELLS - filled)
            );
            // Pad over the rest of a longer previous line.
            let pad = s.width.saturating_sub(line.chars().count());
            s.width = line.chars().count();
            let _ = write!(err, "\r{line}{}", " ".repeat(pad));
            let _ = err.flush();
        } else if milestone {
            let _ = writeln!(err, "export {percent:3.0}% {text}");
        }
    }

    /// Ends the bar's line on a terminal, so what follows starts on a line of its own.
    fn finish(&self) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.tty && s.last_draw.is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}
