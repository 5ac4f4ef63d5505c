//! Recording through the middle of a call: a hold is silence, and after a blind transfer the
//! new agent continues on the agent channel of the same recording.

use std::time::Duration;

use crate::pbx::{Pbx, fixture};
use crate::peers;
use crate::recording::{
    finished_recordings, goertzel, read_stereo, record_company, recording_file, voiced,
};

/// Lengths (in 20 ms blocks) of the runs of blocks above and below `floor` RMS, in order:
/// `(loud, blocks)`.
fn runs(x: &[f64], floor: f64) -> Vec<(bool, usize)> {
    let mut out: Vec<(bool, usize)> = Vec::new();
    for c in x.chunks(160) {
        let loud = (c.iter().map(|s| s * s).sum::<f64>() / c.len() as f64).sqrt() > floor;
        match out.last_mut() {
            Some((l, n)) if *l == loud => *n += 1,
            _ => out.push((loud, 1)),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_is_silence_in_the_recording_and_the_call_goes_on_recording_after_it() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("recholder").await;
    record_company(&pbx, true).await;
    // Answers, echoes the caller, holds after 1 s for 1.5 s, resumes, hangs up 1 s later.
    let phone = pbx.phone(&agent, true, "call_agent_uas_hold", &[]).await;
    pbx.local_trunk().await;
    let caller = pbx
        .caller(
            &fixture("pcmu_440hz_8s.pcap").display().to_string(),
            15_000,
            "1800",
        )
        .run_async()
        .await;
    caller.assert_success();
    phone.wait_async().await.assert_success();
    let recs = finished_recordings(&pbx, 1).await;
    let (left, right) = read_stereo(&recording_file(&pbx, &recs[0]));
    // The caller's tone, a silence while held (nothing is relayed to or from a held agent),
    // then the tone again: [loud, quiet ≥ 1 s, loud], on both channels (the agent echoes).
    for (name, x) in [("left", &left), ("right", &right)] {
        let r = runs(x, 1000.0);
        let long: Vec<(bool, usize)> = r.into_iter().filter(|(_, n)| *n >= 10).collect();
        let pattern: Vec<bool> = long.iter().map(|(l, _)| *l).collect();
        assert!(
            pattern.windows(3).any(|w| w == [true, false, true]),
            "{name}: tone, hold, tone expected in {long:?}"
        );
        let hold = long
            .windows(3)
            .find(|w| w[0].0 && !w[1].0 && w[2].0)
            .map_or(0, |w| w[1].1);
        assert!(
            (50..=110).contains(&hold),
            "{name}: the hold (1.5 s) is {hold} blocks of silence"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_blind_transfer_the_new_agent_continues_on_the_agent_channel() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let first = pbx.agent("recxfer1").await;
    let second = pbx.agent("recxfer2").await;
    record_company(&pbx, true).await;
    pbx.local_trunk().await;
    // The first agent echoes the caller (440 Hz on the agent channel), then transfers to the
    // second, who plays 1 kHz.
    let refer_to = format!("recxfer2@{}", pbx.sip);
    let transferor = pbx
        .phone(
            &first,
            true,
            "call_agent_uas_refer",
            &[("refer_to", &refer_to)],
        )
        .await;
    let caller = pbx
        .caller(
            &fixture("pcmu_440hz_8s.pcap").display().to_string(),
            7000,
            "1800",
        )
        .spawn();
    // Only the first agent is registered when the call comes in, so that it rings there.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let one_khz = fixture("pcmu_1khz_8s.pcap").display().to_string();
    let target = pbx
        .phone(&second, false, "call_agent_uas_play", &[("pcap", &one_khz)])
        .await;
    caller.wait_async().await.assert_success();
    transferor.wait_async().await.assert_success();
    target.wait_async().await.assert_success();
    let recs = finished_recordings(&pbx, 1).await;
    assert_eq!(recs.len(), 1, "one recording for the whole call: {recs:?}");
    let (left, right) = read_stereo(&recording_file(&pbx, &recs[0]));
    // The caller is on the left throughout.
    let l = voiced(&left, 2000.0);
    assert!(l.len() >= 8000 * 5, "caller audio: {} samples", l.len());
    assert!(goertzel(&l, 440.0) > 100.0 * goertzel(&l, 1000.0));
    // The right channel: the first agent (echoing 440 Hz) first, the second (1 kHz) last.
    let r = voiced(&right, 2000.0);
    let (head, tail) = (&r[..4000.min(r.len())], &r[r.len().saturating_sub(8000)..]);
    assert!(
        goertzel(head, 440.0) > 10.0 * goertzel(head, 1000.0),
        "the first agent's part"
    );
    assert!(
        goertzel(tail, 1000.0) > 10.0 * goertzel(tail, 440.0),
        "the second agent's part"
    );
}
