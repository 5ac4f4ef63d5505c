//! Admin commands and key rotation.

use crate::{Served, client, log_in, masterz, run};

use serde_json::{Value, json};

#[test]
fn admin_commands_create_what_they_say_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = run(masterz(d).args([
        "admin",
        "create-company",
        "--name",
        "Acme GmbH",
        "--slug",
        "acme",
    ]));
    assert_eq!(ok.status, 0, "{}", ok.stderr);
    assert!(
        ok.stdout.contains("created company") && ok.stdout.contains("slug=acme"),
        "{}",
        ok.stdout
    );

    for (args, why) in [
        (
            vec![
                "admin",
                "create-company",
                "--name",
                "Again",
                "--slug",
                "acme",
            ],
            "exists",
        ),
        (
            vec![
                "admin",
                "create-company",
                "--name",
                "Bad",
                "--slug",
                "Not A Slug",
            ],
            "slug",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "nope",
                "--email",
                "a@b.example.com",
                "--password",
                "long-enough",
                "--role",
                "admin",
            ],
            "no company",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "acme",
                "--email",
                "not-an-email",
                "--password",
                "long-enough",
                "--role",
                "admin",
            ],
            "email",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "acme",
                "--email",
                "a@b.example.com",
                "--password",
                "short",
                "--role",
                "admin",
            ],
            "password",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "acme",
                "--email",
                "a@b.example.com",
                "--password",
                "long-enough",
                "--role",
                "boss",
            ],
            "boss",
        ),
        (
            vec![
                "admin",
                "create-token",
                "--company",
                "acme",
                "--email",
                "nobody@b.example.com",
            ],
            "no user",
        ),
        (
            vec![
                "admin",
                "reset-password",
                "--email",
                "nobody@b.example.com",
                "--password",
                "long-enough",
            ],
            "no user",
        ),
    ] {
        let r = run(masterz(d).args(&args));
        assert_ne!(r.status, 0, "{args:?} should fail");
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "one-line reason for {args:?}: {:?}",
            r.stderr
        );
        assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }

    let r = run(masterz(d).args([
        "admin",
        "create-user",
        "--company",
        "acme",
        "--email",
        "Ann@Acme.example.com",
        "--password",
        "ann-password",
        "--role",
        "admin",
    ]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("email=ann@acme.example.com") && r.stdout.contains("role=admin"),
        "{}",
        r.stdout
    );
    let r = run(masterz(d).args([
        "admin",
        "create-user",
        "--company",
        "acme",
        "--email",
        "bo@acme.example.com",
        "--password",
        "bo-password",
        "--role",
        "agent",
    ]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let dup = run(masterz(d).args([
        "admin",
        "create-user",
        "--company",
        "acme",
        "--email",
        "ann@acme.example.com",
        "--password",
        "ann-password",
        "--role",
        "agent",
    ]));
    assert_ne!(dup.status, 0);

    let tok = run(masterz(d).args([
        "admin",
        "create-token",
        "--company",
        "acme",
        "--email",
        "ann@acme.example.com",
    ]));
    assert_eq!(tok.status, 0, "{}", tok.stderr);
    assert_eq!(
        tok.stdout.lines().count(),
        1,
        "the token alone: {:?}",
        tok.stdout
    );
    let token = tok.stdout.trim().to_owned();
    assert!(token.starts_with("mzt_"));

    let up = run(masterz(d).args([
        "admin",
        "update-company",
        "--slug",
        "acme",
        "--plan-tier",
        "business",
        "--time-zone",
        "Europe/Berlin",
    ]));
    assert_eq!(up.status, 0, "{}", up.stderr);
    assert!(up.stdout.contains("plan_tier=business"));
    let list = run(masterz(d).args(["admin", "list-companies"]));
    assert!(list.stdout.contains("acme"));
    let reset = run(masterz(d).args([
        "admin",
        "reset-password",
        "--email",
        "bo@acme.example.com",
        "--password",
        "bo-new-password",
    ]));
    assert_eq!(reset.status, 0, "{}", reset.stderr);
    assert_eq!(run(masterz(d).arg("migrate")).status, 0);
    assert_eq!(run(masterz(d).args(["admin", "--help"])).status, 0);

    // The server on the same environment accepts what the commands made.
    let mut s = Served::start(masterz(d));
    let base = s.base();
    let http = client();
    let r = http
        .get(format!("{base}/api/v1/customers"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        http.get(format!("{base}/api/v1/customers"))
            .send()
            .unwrap()
            .status(),
        401
    );
    let me: Value = http
        .get(format!("{base}/api/v1/company"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (me["slug"].as_str(), me["plan_tier"].as_str()),
        (Some("acme"), Some("business"))
    );
    log_in(&http, &base, "bo@acme.example.com", "bo-new-password");
    // Every admin action is in the company's audit log.
    let log: Value = http
        .get(format!("{base}/api/v1/audit-logs"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let actions: Vec<String> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} by {}",
                e["action"].as_str().unwrap(),
                e["entity_type"].as_str().unwrap(),
                e["actor_label"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "create user by cli",
        "create api_token by cli",
        "update company by cli",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }
    assert_eq!(s.terminate().0, 0);
}

#[test]
// P23
fn rotate_key_re_encrypts_credentials_and_keeps_them_readable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        run(masterz(d).args(["admin", "create-company", "--name", "Rot", "--slug", "rot"])).status,
        0
    );
    assert_eq!(
        run(masterz(d).args([
            "admin",
            "create-user",
            "--company",
            "rot",
            "--email",
            "r@rot.example.com",
            "--password",
            "rot-password",
            "--role",
            "admin"
        ]))
        .status,
        0
    );
    let token = run(masterz(d).args([
        "admin",
        "create-token",
        "--company",
        "rot",
        "--email",
        "r@rot.example.com",
    ]))
    .stdout
    .trim()
    .to_owned();
    let mut s = Served::start(masterz(d));
    let base = s.base();
    let r = client().post(format!("{base}/api/v1/channel-accounts")).bearer_auth(&token)
        .json(&json!({"kind": "whatsapp_cloud", "name": "WA", "credentials": {"access_token": "EAAW-rotate-PLAINTEXT"}})).send().unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().unwrap()["id"].as_i64().unwrap();
    assert_eq!(s.terminate().0, 0);

    let old_key = std::fs::read_to_string(d.join("app.key")).unwrap();
    let rot = run(masterz(d).args(["admin", "rotate-key"]));
    assert_eq!(rot.status, 0, "{}", rot.stderr);
    assert!(
        rot.stderr.contains("re-encrypted 1 credential"),
        "{}",
        rot.stderr
    );
    let new_key = std::fs::read_to_string(d.join("app.key")).unwrap();
    assert_ne!(old_key, new_key);
    let keys = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count()
    };
    assert_eq!(keys(&new_key), 1, "after rotation only the new key remains");

    // The credential opens with the new key alone.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ring = masterz::secrets::Keyring::parse(&new_key, masterz::secrets::KeySource::Config)
            .unwrap();
        let db =
            masterz::store::Db::connect(&format!("sqlite://{}", d.join("masterz.db").display()), 2)
                .await
                .unwrap();
        let mut c = db.conn().await.unwrap();
        let company = masterz::store::companies::by_slug(&mut c.ex(), "rot")
            .await
            .unwrap()
            .unwrap();
        let creds = masterz::store::channels::credentials(&mut c.ex(), &ring, company.id, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(creds.expose()["access_token"], "EAAW-rotate-PLAINTEXT");
        let old = masterz::secrets::Keyring::parse(&old_key, masterz::secrets::KeySource::Config)
            .unwrap();
        assert!(
            masterz::store::channels::credentials(&mut c.ex(), &old, company.id, id)
                .await
                .is_err()
        );
    });

    // With the key in MASTERZ_APP_KEY, the new key is saved and printed for the operator.
    let env_key = new_key
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .trim()
        .to_owned();
    std::fs::remove_file(d.join("app.key")).unwrap();
    let rot = run(masterz(d)
        .env("MASTERZ_APP_KEY", &env_key)
        .args(["admin", "rotate-key"]));
    assert_eq!(rot.status, 0, "{}", rot.stderr);
    let printed = rot.stdout.trim();
    assert_eq!(
        std::fs::read_to_string(d.join("app.key.rotated"))
            .unwrap()
            .lines()
            .find(|l| !l.starts_with('#'))
            .unwrap(),
        printed
    );
    let mut cmd = masterz(d);
    cmd.env("MASTERZ_APP_KEY", printed);
    let mut s = Served::start(cmd);
    let base = s.base();
    let r = client()
        .get(format!("{base}/api/v1/channel-accounts/{id}"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.text().unwrap().contains("PLAINTEXT"));
    assert_eq!(s.terminate().0, 0);
}
