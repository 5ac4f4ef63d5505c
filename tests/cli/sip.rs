//! SIP admin commands: users with SIP credentials, `set-sip-credentials`, `create-trunk`, and key
//! rotation over SIP passwords.

use serde_json::Value;

use crate::{Served, client, masterz, ok, refused, run};

#[test]
fn sip_users_and_trunks_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &["admin", "create-company", "--name", "Tel", "--slug", "tel"],
        d,
    );
    let user = |email: &str| {
        vec![
            "admin".to_owned(),
            "create-user".into(),
            "--company".into(),
            "tel".into(),
            "--email".into(),
            email.into(),
            "--password".into(),
            "long-password".into(),
            "--role".into(),
            "admin".into(),
        ]
    };
    let with = |mut base: Vec<String>, extra: &[&str]| {
        base.extend(extra.iter().map(|s| s.to_string()));
        base
    };
    let args = with(
        user("ann@tel.example.com"),
        &[
            "--sip-username",
            "ann.100",
            "--sip-password",
            "ann-sip-secret",
        ],
    );
    let out = ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), d);
    assert!(out.contains("sip_username=ann.100"), "{out}");

    // A taken username fails in one line, and the user is not half-created.
    let args = with(
        user("bo@tel.example.com"),
        &[
            "--sip-username",
            "ann.100",
            "--sip-password",
            "bo-sip-secret",
        ],
    );
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        d,
        "taken",
    );
    for (extra, why) in [
        (&["--sip-username", "bo"][..], "--sip-password"),
        (
            &["--sip-username", "b o", "--sip-password", "bo-sip-secret"][..],
            "--sip-username",
        ),
        (
            &["--sip-username", "bo", "--sip-password", "short"][..],
            "--sip-password",
        ),
    ] {
        let args = with(user("bo@tel.example.com"), extra);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), d, why);
    }
    let args = with(user("bo@tel.example.com"), &[]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), d);
    let out = ok(
        &[
            "admin",
            "set-sip-credentials",
            "--email",
            "bo@tel.example.com",
            "--sip-username",
            "bo.101",
            "--sip-password",
            "bo-sip-secret",
        ],
        d,
    );
    assert!(out.contains("bo.101"), "{out}");
    refused(
        &[
            "admin",
            "set-sip-credentials",
            "--email",
            "bo@tel.example.com",
            "--sip-username",
            "ann.100",
            "--sip-password",
            "bo-sip-secret",
        ],
        d,
        "taken",
    );
    refused(
        &[
            "admin",
            "set-sip-credentials",
            "--email",
            "nobody@tel.example.com",
            "--sip-username",
            "x",
            "--sip-password",
            "bo-sip-secret",
        ],
        d,
        "no user",
    );

    // create-trunk prints the id alone.
    fn trunk<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "admin",
            "create-trunk",
            "--company",
            "tel",
            "--name",
            "Carrier",
        ];
        a.extend_from_slice(extra);
        a
    }
    let id = ok(
        &trunk(&[
            "--host",
            "SIP.Carrier.invalid:5061",
            "--transport",
            "tls",
            "--username",
            "acct-7",
            "--password",
            "trunk-sip-secret",
            "--register",
            "--source",
            "192.0.2.0/24",
            "--source",
            "2001:db8::1",
            "--did",
            "+49 30 1234567",
            "--did",
            "0049301234568",
            "--recording",
            "on",
        ]),
        d,
    );
    assert_eq!(id.lines().count(), 1, "the id alone: {id:?}");
    let id: i64 = id.trim().parse().expect("an id");
    let plain: i64 = ok(&trunk(&["--host", "[2001:db8::7]"]), d)
        .trim()
        .parse()
        .unwrap();
    for (extra, why) in [
        (
            &["--host", "sip.example.com", "--source", "10.0.0.0/33"][..],
            "--source",
        ),
        (
            &["--host", "sip.example.com", "--source", "not-an-ip"][..],
            "--source",
        ),
        (
            &["--host", "sip.example.com", "--did", "030 1234567"][..],
            "--did",
        ),
        (
            &["--host", "sip.example.com", "--register"][..],
            "--register",
        ),
        (
            &["--host", "sip.example.com", "--username", "u", "--register"][..],
            "--password",
        ),
        (&["--host", "bad host"][..], "--host"),
        (&["--host", "sip.example.com:0"][..], "--host"),
        (
            &["--host", "sip.example.com", "--transport", "ws"][..],
            "ws",
        ),
        (
            &["--host", "sip.example.com", "--recording", "maybe"][..],
            "maybe",
        ),
    ] {
        refused(&trunk(extra), d, why);
    }
    refused(
        &[
            "admin",
            "create-trunk",
            "--company",
            "nope",
            "--name",
            "X",
            "--host",
            "h.example",
        ],
        d,
        "no company",
    );
    let token = ok(
        &[
            "admin",
            "create-token",
            "--company",
            "tel",
            "--email",
            "ann@tel.example.com",
        ],
        d,
    )
    .trim()
    .to_owned();

    // The server shows what the commands made.
    let mut s = Served::start(masterz(d));
    let base = s.base();
    let http = client();
    let get = |path: &str| -> Value {
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().unwrap()
    };
    let trunks = get("/api/v1/trunks");
    assert!(!trunks.to_string().contains("trunk-sip-secret"));
    let t = &trunks[0];
    assert_eq!(t["id"], id);
    assert_eq!(
        (
            t["host"].as_str(),
            t["port"].as_u64(),
            t["transport"].as_str()
        ),
        (Some("sip.carrier.invalid"), Some(5061), Some("tls"))
    );
    assert_eq!(
        (
            t["register"].as_bool(),
            t["username"].as_str(),
            t["recording"].as_bool()
        ),
        (Some(true), Some("acct-7"), Some(true))
    );
    assert_eq!(
        t["dids"],
        serde_json::json!(["+49301234567", "+49301234568"])
    );
    assert_eq!(
        t["sources"],
        serde_json::json!(["192.0.2.0/24", "2001:db8::1/128"])
    );
    // The server tries to register at once; the host does not resolve here.
    let state = t["registration"]["state"].as_str().unwrap();
    assert!(["registering", "failed"].contains(&state), "{t}");
    assert_eq!(
        (trunks[1]["id"].as_i64(), trunks[1]["host"].as_str()),
        (Some(plain), Some("[2001:db8::7]"))
    );
    assert_eq!(trunks[1]["registration"]["state"], "disabled");
    assert_eq!(
        trunks.as_array().unwrap().len(),
        2,
        "refused trunks were not created"
    );
    let users = get("/api/v1/users").to_string();
    assert!(
        users.contains("\"sip_username\":\"ann.100\"")
            && users.contains("\"sip_username\":\"bo.101\""),
        "{users}"
    );
    assert!(!users.contains("sip-secret"));
    let log = get("/api/v1/audit-logs").to_string();
    assert!(
        log.contains("\"entity_type\":\"channel_account\"") && log.contains("bo.101"),
        "{log}"
    );
    assert!(!log.contains("sip-secret"), "{log}");
    assert_eq!(s.terminate().0, 0);

    // Key rotation re-encrypts SIP passwords with the trunk credentials.
    let rot = run(masterz(d).args(["admin", "rotate-key"]));
    assert_eq!(rot.status, 0, "{}", rot.stderr);
    assert!(
        rot.stderr.contains("re-encrypted 3 credential"),
        "{}",
        rot.stderr
    );
    let key = std::fs::read_to_string(d.join("app.key")).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ring =
            masterz::secrets::Keyring::parse(&key, masterz::secrets::KeySource::Config).unwrap();
        let db =
            masterz::store::Db::connect(&format!("sqlite://{}", d.join("masterz.db").display()), 2)
                .await
                .unwrap();
        let mut c = db.conn().await.unwrap();
        let login = masterz::store::sip::account_by_username(&mut c.ex(), &ring, "ann.100")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.password.expose(), "ann-sip-secret");
        let trunks = masterz::store::trunks::all_trunks(&mut c.ex(), &ring)
            .await
            .unwrap();
        assert_eq!(
            trunks[0].password.as_ref().unwrap().expose(),
            "trunk-sip-secret"
        );
    });
}
