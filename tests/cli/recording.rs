//! Recording admin commands: `set-recording` (company switch, trunk override, retention) and
//! `set-consent-prompt`, with one-line refusals.

use std::path::Path;

use crate::{ok, refused};

/// A 1 s 600 Hz mono WAV at 16 kHz, written by hand (RIFF header + samples).
fn tone_wav(path: &Path) {
    let rate = 16_000u32;
    let samples: Vec<i16> = (0..rate)
        .map(|i| {
            ((f64::from(i) * 2.0 * std::f64::consts::PI * 600.0 / 16_000.0).sin() * 9000.0) as i16
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn recording_switches_retention_and_the_consent_prompt_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &["admin", "create-company", "--name", "Rec", "--slug", "rec"],
        d,
    );
    let trunk = ok(
        &[
            "admin",
            "create-trunk",
            "--company",
            "rec",
            "--name",
            "T",
            "--host",
            "192.0.2.1",
            "--did",
            "+15551230000",
        ],
        d,
    );
    let trunk = trunk.trim();

    let out = ok(&["admin", "set-recording", "--company", "rec", "on"], d);
    assert!(
        out.contains("recording=on") && out.contains("keep=forever"),
        "{out}"
    );
    let out = ok(
        &[
            "admin",
            "set-recording",
            "--company",
            "rec",
            "--retention-days",
            "90",
        ],
        d,
    );
    assert!(
        out.contains("recording=on") && out.contains("keep=90 days"),
        "{out}"
    );
    let out = ok(
        &[
            "admin",
            "set-recording",
            "--company",
            "rec",
            "--trunk",
            trunk,
            "off",
        ],
        d,
    );
    assert!(out.contains("recording=off"), "{out}");
    let out = ok(
        &[
            "admin",
            "set-recording",
            "--company",
            "rec",
            "--trunk",
            trunk,
            "inherit",
        ],
        d,
    );
    assert!(out.contains("recording=inherit"), "{out}");

    refused(
        &["admin", "set-recording", "--company", "rec"],
        d,
        "say on, off or inherit",
    );
    refused(
        &["admin", "set-recording", "--company", "rec", "inherit"],
        d,
        "inherit is for a trunk",
    );
    refused(
        &[
            "admin",
            "set-recording",
            "--company",
            "rec",
            "--retention-days",
            "0",
        ],
        d,
        "--retention-days",
    );
    refused(
        &[
            "admin",
            "set-recording",
            "--company",
            "rec",
            "--trunk",
            "999",
            "on",
        ],
        d,
        "no trunk 999",
    );
    refused(
        &["admin", "set-recording", "--company", "nope", "on"],
        d,
        "no company",
    );

    // A prompt must decode; garbage is refused and nothing is stored.
    let junk = d.join("junk.mp3");
    std::fs::write(&junk, b"this is not audio at all").unwrap();
    refused(
        &[
            "admin",
            "set-consent-prompt",
            "--company",
            "rec",
            "--trunk",
            trunk,
            "--file",
            junk.to_str().unwrap(),
        ],
        d,
        "junk.mp3",
    );
    let wav = d.join("notice.wav");
    tone_wav(&wav);
    let out = ok(
        &[
            "admin",
            "set-consent-prompt",
            "--company",
            "rec",
            "--trunk",
            trunk,
            "--file",
            wav.to_str().unwrap(),
        ],
        d,
    );
    assert!(out.contains("notice.wav") && out.contains("1.0 s"), "{out}");
    let out = ok(
        &[
            "admin",
            "set-consent-prompt",
            "--company",
            "rec",
            "--trunk",
            trunk,
            "--remove",
        ],
        d,
    );
    assert!(out.contains("removed"), "{out}");

    // Every switch is in the audit log.
    let audit = audit_actions(d);
    for action in [
        "recording_on",
        "recording_off",
        "recording_inherit",
        "set_consent_prompt",
        "remove_consent_prompt",
    ] {
        assert!(
            audit.iter().any(|a| a == action),
            "{action} not in {audit:?}"
        );
    }
}

/// The actions in the company's audit log, read from the database file.
fn audit_actions(d: &Path) -> Vec<String> {
    use masterz::store;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let db = store::Db::connect(&format!("sqlite://{}", d.join("masterz.db").display()), 1)
                .await
                .unwrap();
            let mut conn = db.conn().await.unwrap();
            let c = store::companies::by_slug(&mut conn.ex(), "rec")
                .await
                .unwrap()
                .unwrap();
            store::audit::list(&mut conn.ex(), c.id, &Default::default(), 200)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect()
        })
}
