//! The recorder thread: decodes queued frames, aligns the two channels of each recording
//! (`masterz-recordings`), appends to its WAV file and makes the header valid at least once a
//! second, so that a crash loses at most about a second of audio.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use masterz_media::relay::Side;
use masterz_recordings::{AlignConfig, Aligner, Channel, Frame, StereoWav};
use tokio::sync::mpsc::UnboundedSender;

use super::{Closed, Control, FrameMsg, MAX_PAYLOAD, RecorderMetrics, TapStats};

/// How often aligned audio is written out.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// How often each file's header is made valid.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Frames handled between two looks at the control queue and the clocks.
const BATCH: usize = 4096;
/// Sleep between two looks at an empty queue.
const TICK: Duration = Duration::from_millis(20);

struct Stream {
    recording: i64,
    path: PathBuf,
    customer: Side,
    started: Instant,
    aligner: Aligner,
    wav: StereoWav<BufWriter<File>>,
    stats: Arc<TapStats>,
    failed: Option<String>,
}

impl Stream {
    fn samples_at(&self, t: Instant) -> u64 {
        let us = t.saturating_duration_since(self.started).as_micros();
        u64::try_from(us * 8 / 1000).unwrap_or(u64::MAX)
    }

    fn write_out(&mut self, now: Instant, out: &mut Vec<i16>) {
        out.clear();
        let at = self.samples_at(now);
        self.aligner.drain(at, out);
        self.append(out);
    }

    fn append(&mut self, out: &[i16]) {
        if self.failed.is_none()
            && !out.is_empty()
            && let Err(e) = self.wav.append(out)
        {
            self.failed = Some(format!("write {}: {e}", self.path.display()));
        }
    }
}

/// The recorder thread's state.
struct Writer<'a> {
    frames: Receiver<FrameMsg>,
    control: Receiver<Control>,
    closed: UnboundedSender<Closed>,
    metrics: &'a RecorderMetrics,
    streams: HashMap<u32, Stream>,
    /// Closes met while looking for an Open; handled at the next round.
    deferred: Vec<Control>,
    pcm: [i16; MAX_PAYLOAD],
    out: Vec<i16>,
}

pub(super) fn run(
    frames: Receiver<FrameMsg>,
    control: Receiver<Control>,
    closed: UnboundedSender<Closed>,
    metrics: &RecorderMetrics,
) {
    let mut w = Writer {
        frames,
        control,
        closed,
        metrics,
        streams: HashMap::new(),
        deferred: Vec::new(),
        pcm: [0; MAX_PAYLOAD],
        out: Vec::with_capacity(16_000),
    };
    let mut last_write = Instant::now();
    let mut last_checkpoint = Instant::now();
    // Controls first: a stream is always opened before its first frame is queued.
    while w.controls() {
        // Frames are taken in batches on a tick, never one wake-up per frame: a blocked
        // receiver would make every `try_send` on the relay path a futex wake.
        let mut taken = 0;
        while let Ok(f) = w.frames.try_recv() {
            w.frame(&f);
            taken += 1;
            if taken == BATCH {
                break;
            }
        }
        if taken < BATCH {
            std::thread::sleep(TICK);
        }
        let now = Instant::now();
        if now.duration_since(last_write) >= WRITE_EVERY {
            last_write = now;
            for s in w.streams.values_mut() {
                s.write_out(now, &mut w.out);
            }
        }
        if now.duration_since(last_checkpoint) >= CHECKPOINT_EVERY {
            last_checkpoint = now;
            for s in w.streams.values_mut() {
                if s.failed.is_none()
                    && let Err(e) = s.wav.checkpoint()
                {
                    s.failed = Some(format!("write {}: {e}", s.path.display()));
                }
            }
        }
    }
}

impl Writer<'_> {
    /// Handles every waiting control; false when the service is gone (everything is closed).
    fn controls(&mut self) -> bool {
        for c in std::mem::take(&mut self.deferred) {
            self.control(c);
        }
        loop {
            match self.control.try_recv() {
                Ok(c) => self.control(c),
                Err(TryRecvError::Empty) => return true,
                // The service is gone (server stopping): close what is open and stop.
                Err(TryRecvError::Disconnected) => {
                    let now = Instant::now();
                    for (_, s) in self.streams.drain() {
                        close(s, now, &mut self.out, &self.closed, self.metrics);
                    }
                    return false;
                }
            }
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Open {
                stream,
                recording,
                path,
                customer,
                started,
                stats,
            } => match open(&path) {
                Ok(wav) => {
                    self.streams.insert(
                        stream,
                        Stream {
                            recording,
                            path,
                            customer,
                            started,
                            aligner: Aligner::new(AlignConfig::default()),
                            wav,
                            stats,
                            failed: None,
                        },
                    );
                }
                Err(e) => {
                    self.metrics.failed.fetch_add(1, Relaxed);
                    self.metrics.active.fetch_sub(1, Relaxed);
                    let _ = self.closed.send(Closed {
                        recording,
                        path: path.clone(),
                        frames: 0,
                        duration_ms: 0,
                        failed: Some(format!("create {}: {e}", path.display())),
                        dropped: 0,
                    });
                }
            },
            Control::Close { stream, at } => {
                // Every frame of this stream was queued before its Close: take them all.
                while let Ok(f) = self.frames.try_recv() {
                    self.frame(&f);
                }
                if let Some(s) = self.streams.remove(&stream) {
                    close(s, at, &mut self.out, &self.closed, self.metrics);
                }
            }
        }
    }

    /// One queued frame. The frame of a stream whose Open was sent before it but is still in
    /// the control queue opens the waiting streams first (closes wait for the next round).
    fn frame(&mut self, f: &FrameMsg) {
        while !self.streams.contains_key(&f.stream) {
            match self.control.try_recv() {
                Ok(c @ Control::Open { .. }) => self.control(c),
                Ok(c @ Control::Close { .. }) => self.deferred.push(c),
                // A stream that could not be opened, or is closed: its frame goes nowhere.
                Err(_) => return,
            }
        }
        handle_frame(&mut self.streams, f, &mut self.pcm, self.metrics);
    }
}

fn handle_frame(
    streams: &mut HashMap<u32, Stream>,
    f: &FrameMsg,
    pcm: &mut [i16; MAX_PAYLOAD],
    metrics: &RecorderMetrics,
) {
    let Some(s) = streams.get_mut(&f.stream) else {
        return;
    };
    let len = usize::from(f.len).min(MAX_PAYLOAD);
    masterz_media::g711::decode(f.codec, &f.payload[..len], &mut pcm[..len]);
    let channel = if f.from == s.customer {
        Channel::Customer
    } else {
        Channel::Agent
    };
    let arrival = s.samples_at(f.arrival);
    s.aligner.push(Frame {
        channel,
        ssrc: f.ssrc,
        timestamp: f.timestamp,
        arrival,
        samples: &pcm[..len],
    });
    metrics.frames.fetch_add(1, Relaxed);
}

fn open(path: &Path) -> std::io::Result<StereoWav<BufWriter<File>>> {
    if let Some(dir) = path.parent() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    StereoWav::new(BufWriter::with_capacity(32 * 1024, file)).map_err(std::io::Error::other)
}

fn close(
    mut s: Stream,
    at: Instant,
    out: &mut Vec<i16>,
    closed: &UnboundedSender<Closed>,
    metrics: &RecorderMetrics,
) {
    out.clear();
    let end = s.samples_at(at);
    s.aligner.finish(end, out);
    s.append(out);
    let summary = s.wav.finish();
    let (frames, duration_ms, failed) = match (summary, s.failed) {
        (Ok(w), None) => (w.frames, w.duration_ms, None),
        (Ok(w), Some(f)) => (w.frames, w.duration_ms, Some(f)),
        (Err(e), f) => (
            0,
            0,
            Some(f.unwrap_or_else(|| format!("finish {}: {e}", s.path.display()))),
        ),
    };
    if failed.is_some() {
        metrics.failed.fetch_add(1, Relaxed);
    }
    metrics.active.fetch_sub(1, Relaxed);
    let _ = closed.send(Closed {
        recording: s.recording,
        path: s.path,
        frames,
        duration_ms,
        failed,
        dropped: s.stats.dropped.load(Relaxed),
    });
}
