//! Recording (issue 5): a recorded call is a stereo WAV with the caller on the left and the
//! agent on the right, as long as the call; no recording without the switch; the consent
//! prompt reaches the caller before agents ring.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use masterz::store;
use reqwest::Method;
use serde_json::{Value, json};

use crate::pbx::{DID, Pbx, fixture, free_media_port, num, text, tone_3s};
use crate::peers::{self, free_port, sipp::Sipp};

/// The samples of a 16-bit stereo WAV at 8 kHz, as (left, right).
pub(crate) fn read_stereo(path: &std::path::Path) -> (Vec<f64>, Vec<f64>) {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} does not open as WAV: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16),
        "{spec:?}"
    );
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    let left = samples.iter().step_by(2).map(|&s| f64::from(s)).collect();
    let right = samples
        .iter()
        .skip(1)
        .step_by(2)
        .map(|&s| f64::from(s))
        .collect();
    (left, right)
}

/// Power of `f` Hz in `x` (8 kHz).
pub(crate) fn goertzel(x: &[f64], f: f64) -> f64 {
    crate::audio::goertzel(x, 8000, f)
}

/// The loudest stretch of `x`: its samples whose 20 ms block is above `floor` RMS.
pub(crate) fn voiced(x: &[f64], floor: f64) -> Vec<f64> {
    x.chunks(160)
        .filter(|c| (c.iter().map(|s| s * s).sum::<f64>() / c.len() as f64).sqrt() > floor)
        .flatten()
        .copied()
        .collect()
}

/// Switches recording on for the whole company (audited), through the API.
pub(crate) async fn record_company(pbx: &Pbx, on: bool) {
    let r = pbx
        .req(Method::PATCH, "/api/v1/company")
        .json(&json!({ "recording_enabled": on }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The company's recordings, straight from the store.
pub(crate) async fn recordings(pbx: &Pbx) -> Vec<store::recordings::Recording> {
    let mut conn = pbx.s.store().conn().await.unwrap();
    store::recordings::list(&mut conn.ex(), pbx.t.company, &Default::default())
        .await
        .unwrap()
}

/// Waits until the company has `n` recordings that are no longer being written.
pub(crate) async fn finished_recordings(pbx: &Pbx, n: usize) -> Vec<store::recordings::Recording> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = recordings(pbx).await;
        if r.len() >= n && r.iter().all(|r| r.status != "recording") {
            return r;
        }
        assert!(Instant::now() < deadline, "recordings: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn recording_file(pbx: &Pbx, r: &store::recordings::Recording) -> PathBuf {
    pbx.s.data_dir().join(&r.path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_has_the_caller_left_and_the_agent_right_for_as_long_as_it_lasted() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("rec").await;
    record_company(&pbx, true).await;
    let one_khz = fixture("pcmu_1khz_8s.pcap").display().to_string();
    let uas = pbx
        .phone(&agent, false, "call_agent_uas_play", &[("pcap", &one_khz)])
        .await;
    pbx.local_trunk().await;
    let caller = pbx
        .caller(
            &fixture("pcmu_440hz_8s.pcap").display().to_string(),
            6000,
            "1800",
        )
        .run_async()
        .await;
    caller.assert_success();
    let _ = uas.stop();
    let calls = pbx
        .wait_calls(Duration::from_secs(20), "1 ended", |c| {
            !c.is_empty() && c.iter().all(|c| !c["ended_at"].is_null())
        })
        .await;
    let call = &calls[0];
    assert_eq!(text(call, "status"), "completed", "{call}");
    let recs = finished_recordings(&pbx, 1).await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    let rec = &recs[0];
    assert_eq!(rec.call_id, num(call, "id"));
    assert_eq!(rec.status, "complete", "{rec:?}");
    assert_eq!(rec.frames_dropped, 0);
    let path = recording_file(&pbx, rec);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(rec.size_bytes, Some(bytes.len() as i64));
    {
        use sha2::Digest as _;
        assert_eq!(
            rec.sha256.as_deref(),
            Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str())
        );
    }

    // As long as the call was answered (±2 %).
    let answered = call["answered_at"].as_str().unwrap();
    let ended = call["ended_at"].as_str().unwrap();
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    let talk_ms = (ms(ended) - ms(answered)) as f64;
    let (left, right) = read_stereo(&path);
    let wav_ms = left.len() as f64 / 8.0;
    assert!(
        (wav_ms - talk_ms).abs() <= talk_ms * 0.02,
        "recording {wav_ms} ms, call answered for {talk_ms} ms"
    );
    assert_eq!(rec.duration_ms, Some(left.len() as i64 / 8));

    // Left: the caller's 440 Hz; right: the agent's 1 kHz.
    let (l, r) = (voiced(&left, 2000.0), voiced(&right, 2000.0));
    assert!(
        l.len() >= 8000 * 4,
        "under 4 s of caller audio: {}",
        l.len()
    );
    assert!(r.len() >= 8000 * 4, "under 4 s of agent audio: {}", r.len());
    let (l440, l1k) = (goertzel(&l, 440.0), goertzel(&l, 1000.0));
    let (r440, r1k) = (goertzel(&r, 440.0), goertzel(&r, 1000.0));
    assert!(l440 > 100.0 * l1k, "left: 440 Hz {l440:e} vs 1 kHz {l1k:e}");
    assert!(
        r1k > 100.0 * r440,
        "right: 1 kHz {r1k:e} vs 440 Hz {r440:e}"
    );

    // The timeline says so, and the metrics count it.
    let detail = pbx.call(num(call, "id")).await;
    let kinds = crate::pbx::event_kinds(&detail);
    assert!(kinds.contains(&"recording_started".to_owned()), "{kinds:?}");
    let m = pbx.metrics("masterz_recording").await;
    assert!(
        m.iter()
            .any(|(n, v)| n == "masterz_recording_frames_dropped_total" && *v == 0.0),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_switch_nothing_is_recorded_and_each_switch_is_audited() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("norec").await;
    let agent_port = free_port();
    pbx.register(&agent, agent_port).await;
    let uas = Sipp::scenario("call_agent_uas")
        .local_port(agent_port)
        .service(&agent.sip_user)
        .media_port(free_media_port())
        .rtp_echo()
        .key("talk_ms", "600000")
        .timeout(Duration::from_secs(60))
        .spawn();
    let trunk = pbx.local_trunk().await;
    let call = || pbx.caller(&tone_3s(), 2000, "1800");
    // Default: off.
    call().run_async().await.assert_success();
    // The company on, but this trunk says off: the trunk wins.
    record_company(&pbx, true).await;
    let r = pbx
        .req(Method::PATCH, &format!("/api/v1/channel-accounts/{trunk}"))
        .json(
            &json!({"settings": {"host": "127.0.0.1", "sources": ["127.0.0.1/32"],
            "dids": [DID], "recording": false}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    call().run_async().await.assert_success();
    record_company(&pbx, false).await;
    let _ = uas.stop();
    pbx.wait_calls(Duration::from_secs(20), "2 ended", |c| {
        c.len() >= 2 && c.iter().all(|c| !c["ended_at"].is_null())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(recordings(&pbx).await.is_empty());
    assert!(
        !pbx.s.data_dir().join("recordings").exists(),
        "a recordings directory was written"
    );
    // Each switch left an audit row: company on, trunk off, company off.
    let audit: Value = pbx
        .req(Method::GET, "/api/v1/audit-logs?limit=100")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = audit
        .as_array()
        .or_else(|| audit["items"].as_array())
        .cloned()
        .unwrap_or_default();
    let switches: Vec<(String, String)> = rows
        .iter()
        .filter(|r| text(r, "action").starts_with("recording_"))
        .map(|r| (text(r, "action"), text(r, "entity_type")))
        .collect();
    for want in [
        ("recording_on", "company"),
        ("recording_off", "channel_account"),
        ("recording_off", "company"),
    ] {
        assert!(
            switches.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} not in {switches:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_prompt_plays_to_the_caller_before_agents_ring() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("prompted").await;
    let uas = pbx.phone(&agent, true, "call_agent_uas", &[]).await;
    let trunk = pbx.local_trunk().await;
    // A 2 s announcement as a 44.1 kHz stereo WAV: decoded, resampled and encoded by masterz.
    let wav = pbx.s.data_dir().join("consent.wav");
    {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        for i in 0..44_100 * 2 {
            let v = (f64::from(i) * 2.0 * std::f64::consts::PI * 600.0 / 44_100.0).sin();
            let s = (v * 12_000.0) as i16;
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }
    let mut conn = pbx.s.store().conn().await.unwrap();
    let bytes = std::fs::read(&wav).unwrap();
    assert!(
        store::recordings::set_prompt(
            &mut conn.ex(),
            pbx.t.company,
            trunk,
            &store::recordings::NewPrompt {
                filename: "consent.wav",
                content: &bytes,
                sha256: "test-sha",
                duration_ms: 2000,
                at: 0,
            },
        )
        .await
        .unwrap()
    );
    drop(conn);
    record_company(&pbx, true).await;
    let caller_media = free_media_port();
    let caller = pbx
        .caller(&tone_3s(), 2000, "1800")
        .media_port(caller_media)
        .spawn();
    // While the prompt plays, its RTP reaches the caller's socket (SIPp does not read it).
    let mut early = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        if let Some((queued, _)) = crate::pbx::udp_socket_stats(caller_media) {
            early = early.max(queued);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    caller.wait_async().await.assert_success();
    let _ = uas.stop();
    assert!(
        early > 0,
        "no prompt audio reached the caller while it rang"
    );
    let calls = pbx
        .wait_calls(Duration::from_secs(20), "1 ended", |c| {
            !c.is_empty() && c.iter().all(|c| !c["ended_at"].is_null())
        })
        .await;
    let detail = pbx.call(num(&calls[0], "id")).await;
    let kinds = crate::pbx::event_kinds(&detail);
    let prompt = kinds.iter().position(|k| k == "prompt_played");
    let ringing = kinds.iter().position(|k| k == "ringing");
    assert!(
        prompt.is_some() && ringing.is_some() && prompt < ringing,
        "the prompt must come before ringing: {kinds:?}"
    );
    let ms = |t: &Value| {
        chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let waited = ms(&calls[0]["answered_at"]) - ms(&calls[0]["started_at"]);
    assert!(waited >= 1900, "answered {waited} ms after the INVITE");
    finished_recordings(&pbx, 1).await;
}
