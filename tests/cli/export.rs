//! `masterz export --company SLUG --out FILE`: the archive of a company (P26), written
//! atomically, with progress on stderr and a summary on stdout; one-line refusals.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use masterz::store::{self, Db, calls::NewCall, conversations::NewMessage, recordings};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{masterz, ok, refused, run};

const PASSWORD: &str = "correct-horse-battery";

/// A customer with a message and a recorded call, written through the store into the database
/// the commands use; returns the recording's path (relative to the data directory) and bytes.
fn seed(d: &Path, slug: &str) -> (String, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", d.join("masterz.db").display());
        let db = Db::connect(&url, 1).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        let company = store::companies::by_slug(&mut tx.ex(), slug)
            .await
            .unwrap()
            .unwrap()
            .id;
        let customer =
            store::customers::find_or_create_by_phone(&mut tx.ex(), company, "+15550003333")
                .await
                .unwrap();
        let conv = store::conversations::create(&mut tx.ex(), company, customer, None, None, None)
            .await
            .unwrap()
            .id;
        let m = NewMessage {
            conversation_id: conv,
            customer_id: customer,
            direction: "in",
            sender_user_id: None,
            body: Some("CLI-EXPORT-MESSAGE-4410"),
            status: "received",
            external_id: None,
            at: 1_764_075_000_000,
        };
        store::conversations::add_message(&mut tx.ex(), company, &m)
            .await
            .unwrap();
        let call = NewCall {
            customer_id: Some(customer),
            direction: "in",
            from_uri: "sip:caller@provider.example",
            to_uri: "sip:+15559870000@masterz",
            trunk_id: None,
            group_id: None,
            sip_call_id: "cli-export@provider",
            agent_user_id: None,
            started_at: 1_764_075_600_000,
        };
        let call_id = store::calls::create(&mut tx.ex(), company, &call)
            .await
            .unwrap();
        let path = format!("recordings/{company}/2025/11/25/call-{call_id}.wav");
        let audio: Vec<u8> = (0..30_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let full = d.join(&path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, &audio).unwrap();
        let rec = recordings::start(&mut tx.ex(), company, call_id, &path, 1_764_075_600_500)
            .await
            .unwrap();
        let sha = hex::encode(Sha256::digest(&audio));
        let done = recordings::Finished {
            status: "complete",
            ended_at: 1_764_075_601_000,
            duration_ms: 500,
            size_bytes: audio.len() as i64,
            sha256: Some(&sha),
            frames_dropped: 0,
        };
        assert!(recordings::finish(&mut tx.ex(), rec, &done).await.unwrap());
        tx.commit().await.unwrap();
        db.close().await;
        (path, audio)
    })
}

fn unpack(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

#[test]
fn export_writes_the_company_archive_atomically_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &["admin", "create-company", "--name", "Exp", "--slug", "exp"],
        d,
    );
    let email = "admin@exp.example.com";
    ok(
        &[
            "admin",
            "create-user",
            "--company",
            "exp",
            "--email",
            email,
            "--password",
            PASSWORD,
            "--role",
            "admin",
        ],
        d,
    );
    let (recording_path, audio) = seed(d, "exp");

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("exp.tar.gz");
    let out_text = out.to_str().unwrap();
    let r = run(masterz(d).args(["export", "--company", "exp", "--out", out_text]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("exported company exp: ") && r.stdout.contains(out_text),
        "{}",
        r.stdout
    );
    // Not a terminal: plain progress lines, one per entity, ending at 100 %.
    assert!(
        r.stderr.contains("export") && r.stderr.contains("messages: 1 rows"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.trim_end().lines().last().unwrap().contains("100%"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains('\r'), "no redrawing off a terminal");

    // The destination alone: the temporary files are gone.
    let names: Vec<String> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["exp.tar.gz"]);

    let archive = std::fs::read(&out).unwrap();
    let files = unpack(&archive);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["company"]["slug"], "exp");
    let mut rows_total = 0;
    for e in manifest["entities"].as_array().unwrap() {
        let text = std::str::from_utf8(&files[e["file"].as_str().unwrap()]).unwrap();
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len() as u64, e["rows"].as_u64().unwrap(), "{e}");
        rows_total += rows.len();
    }
    for f in manifest["files"].as_array().unwrap() {
        let data = &files[f["path"].as_str().unwrap()];
        assert_eq!(data.len() as u64, f["size"].as_u64().unwrap());
        assert_eq!(
            hex::encode(Sha256::digest(data)),
            f["sha256"].as_str().unwrap()
        );
    }
    // The summary counts what the archive holds: the listed files and the manifest.
    let summary_files = manifest["files"].as_array().unwrap().len() + 1;
    assert!(
        r.stdout.contains(&format!(
            "{rows_total} rows, {summary_files} files, {} bytes",
            archive.len()
        )),
        "{}",
        r.stdout
    );
    let users = std::str::from_utf8(&files["users.jsonl"]).unwrap();
    assert!(
        users.contains(email) && !users.contains("password"),
        "{users}"
    );
    assert!(
        std::str::from_utf8(&files["messages.jsonl"])
            .unwrap()
            .contains("CLI-EXPORT-MESSAGE-4410")
    );
    assert_eq!(
        files[&recording_path], audio,
        "the recording, byte for byte"
    );
    for (path, data) in &files {
        assert!(
            !data.windows(4).any(|w| w == b"$2b$"),
            "a bcrypt hash in {path}"
        );
    }

    // An existing file is replaced, as a whole.
    ok(&["export", "--company", "exp", "--out", out_text], d);
    assert_eq!(
        unpack(&std::fs::read(&out).unwrap())[&recording_path],
        audio
    );

    // Refusals: one line on stderr, exit status 1, nothing written.
    let missing = out_dir.path().join("none.tar.gz");
    let args = [
        "export",
        "--company",
        "nope",
        "--out",
        missing.to_str().unwrap(),
    ];
    refused(&args, d, "no company with slug \"nope\"");
    assert_eq!(run(masterz(d).args(args)).status, 1);
    assert!(!missing.exists());
    let unwritable = out_dir.path().join("no-such-dir").join("x.tar.gz");
    let args = [
        "export",
        "--company",
        "exp",
        "--out",
        unwritable.to_str().unwrap(),
    ];
    refused(&args, d, "cannot write to");
    assert_eq!(run(masterz(d).args(args)).status, 1);
    refused(
        &[
            "export",
            "--company",
            "exp",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
        d,
        "is a directory",
    );
}
