//! Call recording, the server side: the tap the media engine writes frames into, the recorder
//! thread that turns them into stereo WAV files, the database rows, start-up recovery after a
//! crash, retention and the removal of deleted recordings' files.
//!
//! ```text
//!  relay task ──try_send(frame)──▶ bounded queue ──▶ recorder thread ──▶ WAV files
//!  (never waits; full → dropped                       (masterz-recordings: align,
//!   and counted)                                       write, checkpoint each second)
//!                                                              │ closed
//!                                                              ▼
//!                                                     finisher task: SHA-256, row
//! ```
//!
//! Recording is off unless the company switched it on (`companies.recording_enabled`) or the
//! trunk's own `recording` setting says so; see [`Recorder::wanted`].

pub(crate) mod janitor;
mod prompts;
mod recovery;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::time::Instant;

use masterz_media::codec::Codec;
use masterz_media::relay::{Side, TapFrame};
use tokio::sync::mpsc::UnboundedReceiver;

pub use self::prompts::PromptAudio;
pub(crate) use self::recovery::recover;
use crate::domain::CompanyId;
use crate::store::{self, Db};

/// Largest payload carried per queued frame: 40 ms of G.711 (ptime 20 takes one frame, longer
/// packets are split). Small, so that the queue stays small: ~360 bytes a frame.
pub(crate) const MAX_PAYLOAD: usize = 320;

/// One audio frame on its way to the recorder thread.
pub(crate) struct FrameMsg {
    stream: u32,
    from: Side,
    codec: Codec,
    ssrc: u32,
    timestamp: u32,
    arrival: Instant,
    len: u16,
    payload: [u8; MAX_PAYLOAD],
}

/// What the recorder thread is told besides frames.
pub(crate) enum Control {
    Open {
        stream: u32,
        recording: i64,
        path: PathBuf,
        customer: Side,
        started: Instant,
        stats: Arc<TapStats>,
    },
    Close {
        stream: u32,
        at: Instant,
    },
}

/// A recording that the thread closed, for the finisher to hash and write down.
pub(crate) struct Closed {
    recording: i64,
    path: PathBuf,
    frames: u64,
    duration_ms: u64,
    failed: Option<String>,
    dropped: u64,
}

/// Counters of one tap.
#[derive(Debug, Default)]
pub(crate) struct TapStats {
    /// Frames handed to the queue.
    pub(crate) sent: AtomicU64,
    /// Frames dropped because the queue was full.
    pub(crate) dropped: AtomicU64,
}

/// Counters of the recorder, for `/metrics`.
#[derive(Debug, Default)]
pub struct RecorderMetrics {
    /// Recordings open now.
    pub active: AtomicU64,
    /// Recordings started.
    pub started: AtomicU64,
    /// Frames written.
    pub frames: AtomicU64,
    /// Frames dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Recordings that failed (file could not be written).
    pub failed: AtomicU64,
}

/// The copy of a call's audio going to its recording. Held by the call's media session; when
/// it is dropped (the call ended), the recording is closed.
pub struct Tap {
    stream: u32,
    frames: SyncSender<FrameMsg>,
    control: Sender<Control>,
    stats: Arc<TapStats>,
    metrics: Arc<RecorderMetrics>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("stream", &self.stream).finish()
    }
}

impl Tap {
    /// Copies one relayed frame into the queue; never waits. A full queue drops the frame.
    #[inline]
    pub fn push(&self, now: Instant, frame: &TapFrame<'_>) {
        let mut timestamp = frame.timestamp;
        for chunk in frame.payload.chunks(MAX_PAYLOAD) {
            let mut msg = FrameMsg {
                stream: self.stream,
                from: frame.from,
                codec: frame.codec,
                ssrc: frame.ssrc,
                timestamp,
                arrival: now,
                len: chunk.len() as u16,
                payload: [0; MAX_PAYLOAD],
            };
            msg.payload[..chunk.len()].copy_from_slice(chunk);
            // G.711: one byte per sample.
            timestamp = timestamp.wrapping_add(chunk.len() as u32);
            match self.frames.try_send(msg) {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Relaxed);
                }
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.stats.dropped.fetch_add(1, Relaxed);
                    self.metrics.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Close {
            stream: self.stream,
            at: Instant::now(),
        });
    }
}

/// Why a recording could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The database refused the row.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The recorder thread is gone.
    #[error("the recorder is not running")]
    Stopped,
}

/// The recording service: one writer thread, its queue, and the jobs around it.
pub struct Recorder {
    db: Db,
    data_dir: PathBuf,
    frames: SyncSender<FrameMsg>,
    control: Sender<Control>,
    next_stream: AtomicU32,
    metrics: Arc<RecorderMetrics>,
    prompts: prompts::PromptCache,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Recorder {
    /// Starts the writer thread, the finisher, retention and the file reaper. Call within a
    /// tokio runtime, after [`recover`].
    pub fn start(
        db: Db,
        data_dir: &Path,
        queue_frames: usize,
        retention_every: std::time::Duration,
    ) -> std::io::Result<Arc<Self>> {
        let (frames_tx, frames_rx) = std::sync::mpsc::sync_channel(queue_frames.max(64));
        let (control_tx, control_rx) = std::sync::mpsc::channel();
        let (closed_tx, closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let metrics = Arc::new(RecorderMetrics::default());
        let thread_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer::run(frames_rx, control_rx, closed_tx, &thread_metrics))?;
        tokio::spawn(finisher(db.clone(), data_dir.to_path_buf(), closed_rx));
        tokio::spawn(janitor::run(
            db.clone(),
            data_dir.to_path_buf(),
            retention_every,
        ));
        Ok(Arc::new(Self {
            db: db.clone(),
            data_dir: data_dir.to_path_buf(),
            frames: frames_tx,
            control: control_tx,
            next_stream: AtomicU32::new(1),
            metrics,
            prompts: prompts::PromptCache::new(db),
        }))
    }

    /// Whether a call on a trunk whose setting is `trunk_setting` is recorded for `company`:
    /// the trunk's `true`/`false` wins, else the company's switch (default off).
    pub async fn wanted(&self, company: CompanyId, trunk_setting: Option<bool>) -> bool {
        if let Some(v) = trunk_setting {
            return v;
        }
        let mut conn = match self.db.conn().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "recording policy unavailable; not recording");
                return false;
            }
        };
        store::recordings::company_enabled(&mut conn.ex(), company)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "recording policy unavailable; not recording");
                false
            })
    }

    /// The consent prompt of `trunk`, decoded and encoded for both codecs (cached).
    pub async fn prompt(&self, trunk: i64) -> Option<Arc<PromptAudio>> {
        self.prompts.get(trunk).await
    }

    /// Starts recording call `call_id`: writes the row, opens the file on the writer thread and
    /// returns the tap for the call's media session. `customer` is the side the customer is on.
    pub async fn start_call(
        &self,
        company: CompanyId,
        call_id: i64,
        customer: Side,
    ) -> Result<Tap, RecordError> {
        let now = chrono::Utc::now();
        let date = masterz_recordings::layout::Date {
            year: u16::try_from(chrono::Datelike::year(&now)).unwrap_or(1970),
            month: chrono::Datelike::month(&now) as u8,
            day: chrono::Datelike::day(&now) as u8,
        };
        let rel = masterz_recordings::layout::recording_path(company.0, date, call_id);
        let rel_text = rel.to_string_lossy().into_owned();
        let mut conn = self.db.conn().await?;
        let recording = store::recordings::start(
            &mut conn.ex(),
            company,
            call_id,
            &rel_text,
            now.timestamp_millis(),
        )
        .await?;
        drop(conn);
        let stream = self.next_stream.fetch_add(1, Relaxed);
        let stats = Arc::new(TapStats::default());
        self.control
            .send(Control::Open {
                stream,
                recording,
                path: self.data_dir.join(&rel),
                customer,
                started: Instant::now(),
                stats: stats.clone(),
            })
            .map_err(|_| RecordError::Stopped)?;
        self.metrics.started.fetch_add(1, Relaxed);
        self.metrics.active.fetch_add(1, Relaxed);
        Ok(Tap {
            stream,
            frames: self.frames.clone(),
            control: self.control.clone(),
            stats,
            metrics: self.metrics.clone(),
        })
    }

    /// Appends the recorder's metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let m = &self.metrics;
        for (name, kind, help, v) in [
            (
                "masterz_recordings_active",
                "gauge",
                "Recordings being written.",
                &m.active,
            ),
            (
                "masterz_recordings_started_total",
                "counter",
                "Recordings started.",
                &m.started,
            ),
            (
                "masterz_recording_frames_total",
                "counter",
                "Audio frames written to recordings.",
                &m.frames,
            ),
            (
                "masterz_recording_frames_dropped_total",
                "counter",
                "Audio frames dropped because the recorder queue was full (heard as silence).",
                &m.dropped,
            ),
            (
                "masterz_recordings_failed_total",
                "counter",
                "Recordings whose file could not be written.",
                &m.failed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

/// Hashes each closed file and writes its row.
async fn finisher(db: Db, data_dir: PathBuf, mut closed: UnboundedReceiver<Closed>) {
    while let Some(c) = closed.recv().await {
        let path = c.path.clone();
        let facts = tokio::task::spawn_blocking(move || file_facts(&path))
            .await
            .ok()
            .flatten();
        let status = if c.failed.is_some() || facts.is_none() {
            "failed"
        } else {
            "complete"
        };
        if let Some(reason) = &c.failed {
            tracing::error!(recording = c.recording, reason, "recording failed");
        }
        let (size, sha) = facts.unzip();
        let finished = store::recordings::Finished {
            status,
            ended_at: store::now_ms(),
            duration_ms: i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
            size_bytes: size.unwrap_or(0),
            sha256: sha.as_deref(),
            frames_dropped: i64::try_from(c.dropped).unwrap_or(i64::MAX),
        };
        let result = async {
            let mut conn = db.conn().await?;
            store::recordings::finish(&mut conn.ex(), c.recording, &finished).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(recording = c.recording, error = %e, "closing the recording row failed; start-up recovery will close it");
        }
        tracing::debug!(recording = c.recording, frames = c.frames, dir = %data_dir.display(), "recording closed");
    }
}

/// Size and SHA-256 (hex) of a file.
pub(crate) fn file_facts(path: &Path) -> Option<(i64, String)> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut f = std::fs::File::open(path).ok()?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Some((i64::try_from(size).ok()?, hex::encode(hasher.finalize())))
}
