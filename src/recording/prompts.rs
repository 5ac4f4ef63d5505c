//! Consent prompts: a trunk's uploaded announcement, decoded (WAV, MP3, FLAC, Ogg Vorbis),
//! resampled to 8 kHz and encoded in both G.711 laws once, then cached until the upload changes
//! (its SHA-256 is checked per call: one indexed read).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use masterz_media::codec::Codec;

use crate::store::{self, Db};

/// A prompt ready to play: 8 kHz G.711 in each law.
#[derive(Debug)]
pub struct PromptAudio {
    pcmu: Arc<[u8]>,
    pcma: Arc<[u8]>,
}

impl PromptAudio {
    /// Encodes 8 kHz mono PCM.
    pub fn from_pcm(pcm: &[i16]) -> Self {
        let mut pcmu = vec![0u8; pcm.len()];
        let mut pcma = vec![0u8; pcm.len()];
        masterz_media::g711::encode(Codec::Pcmu, pcm, &mut pcmu);
        masterz_media::g711::encode(Codec::Pcma, pcm, &mut pcma);
        Self {
            pcmu: pcmu.into(),
            pcma: pcma.into(),
        }
    }

    /// The prompt in `codec`.
    pub fn encoded(&self, codec: Codec) -> Arc<[u8]> {
        match codec {
            Codec::Pcmu => self.pcmu.clone(),
            Codec::Pcma => self.pcma.clone(),
        }
    }

    /// Its length in ms.
    pub fn duration_ms(&self) -> u64 {
        self.pcmu.len() as u64 / 8
    }
}

type Cached = (String, Arc<PromptAudio>);

pub(super) struct PromptCache {
    db: Db,
    cache: Mutex<HashMap<i64, Cached>>,
}

impl PromptCache {
    pub(super) fn new(db: Db) -> Self {
        Self {
            db,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) async fn get(&self, trunk: i64) -> Option<Arc<PromptAudio>> {
        let mut conn = self.db.conn().await.ok()?;
        let sha = match store::recordings::prompt_sha256(&mut conn.ex(), trunk).await {
            Ok(Some(sha)) => sha,
            Ok(None) => {
                self.cached().remove(&trunk);
                return None;
            }
            Err(e) => {
                tracing::warn!(trunk, error = %e, "reading the consent prompt failed");
                return None;
            }
        };
        if let Some((s, audio)) = self.cached().get(&trunk)
            && *s == sha
        {
            return Some(audio.clone());
        }
        let prompt = store::recordings::prompt(&mut conn.ex(), trunk)
            .await
            .ok()
            .flatten()?;
        drop(conn);
        let ext = std::path::Path::new(&prompt.filename)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_owned);
        let decoded = tokio::task::spawn_blocking(move || {
            masterz_recordings::decode_prompt(&prompt.content, ext.as_deref())
                .map(|pcm| PromptAudio::from_pcm(&pcm))
        })
        .await
        .ok()?;
        match decoded {
            Ok(audio) => {
                let audio = Arc::new(audio);
                self.cached().insert(trunk, (sha, audio.clone()));
                Some(audio)
            }
            Err(e) => {
                tracing::warn!(trunk, error = %e, "the consent prompt cannot be decoded; calls go on without it");
                None
            }
        }
    }
}
