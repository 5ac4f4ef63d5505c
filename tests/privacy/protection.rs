//! Encryption and security (§5): TLS for the web, SIP and WebSocket; credentials encrypted at
//! rest, never answered, and re-encrypted by key rotation. Redaction is in `redaction.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::{Method, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::both_backends;
use crate::common::{Backend, PASSWORD, TestServer, seed_tenant};
use crate::support::{call, expect, masterz, table_text};

both_backends!(
    p22_web_sip_and_websocket_traffic_use_tls,
    p23_credentials_are_encrypted_at_rest_write_only_and_rotate,
);

/// Accepts exactly one certificate: the one the server was configured with.
#[derive(Debug)]
struct Pinned {
    cert: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the configured certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connection to `addr` that succeeds only if it presents `cert` (DER).
async fn tls_to(
    addr: SocketAddr,
    cert: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            cert: cert.to_vec(),
            provider,
        }))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS to {addr}: {e}"))
}

/// An OPTIONS request over `transport` (`TLS`, `WSS`).
fn options(transport: &str) -> String {
    format!(
        "OPTIONS sip:masterz SIP/2.0\r\nVia: SIP/2.0/{transport} p22.invalid;branch=z9hG4bKp22{transport}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@masterz>;tag=p22\r\nTo: <sip:masterz>\r\n\
         Call-ID: p22-{transport}@invalid\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

// P22: with a certificate configured, the web is HTTPS only (the configured certificate, Secure
// cookies, plain HTTP refused), SIP is offered over TLS and the SIP WebSocket over WSS; behind a
// trusted TLS proxy, cookies are Secure too.
async fn p22_web_sip_and_websocket_traffic_use_tls(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::common::self_signed_certificate(dir.path(), "localhost");
    let der = CertificateDer::from_pem_file(&cert)
        .unwrap()
        .as_ref()
        .to_vec();
    let Some(s) = TestServer::start_with(backend, |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
        c.sip_tls_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
    else {
        return;
    };
    let t = seed_tenant(s.store(), "p22").await;
    let http_addr = s.server.as_ref().unwrap().http_addr;
    let https = format!("https://{http_addr}");
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = client.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let login = client
        .post(format!("{https}/api/v1/auth/login"))
        .json(&json!({"email": t.admin_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Plain HTTP on the same port gets no answer.
    let plain = s
        .http
        .get(format!("http://{http_addr}/healthz"))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status() != StatusCode::OK,
        "plain HTTP served"
    );
    // The certificate presented is the configured one (the pinned handshake fails otherwise).
    drop(tls_to(http_addr, &der).await);

    // SIP over TLS, with the same certificate.
    let sip_tls = s
        .server
        .as_ref()
        .and_then(|s| s.state.telephony.get())
        .and_then(|t| t.sip_tls_addr)
        .expect("SIP over TLS is listening");
    let mut tls = tls_to(sip_tls, &der).await;
    tls.write_all(options("TLS").as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf))
            .await
            .expect("an answer over TLS within 3 s")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");

    // The SIP WebSocket over WSS, on the HTTPS port.
    let mut req = format!("wss://localhost:{}/sip", http_addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls_to(http_addr, &der).await)
        .await
        .expect("WebSocket handshake over TLS");
    ws.send(tungstenite::Message::text(options("WSS")))
        .await
        .unwrap();
    let answer = loop {
        let frame = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("an answer over WSS within 3 s")
            .expect("open")
            .unwrap();
        if let tungstenite::Message::Text(t) = frame {
            if t.as_str().starts_with("SIP/2.0 1") {
                continue;
            }
            break t.as_str().to_owned();
        }
    };
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    s.stop().await;

    // Behind a trusted TLS-terminating proxy: Secure cookies; an untrusted peer's claim of
    // https changes nothing.
    let Some(s) = TestServer::start_with(backend, |c| {
        c.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let t = seed_tenant(s.store(), "p22").await;
    let r = call(
        &s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": t.admin_email, "password": PASSWORD})),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["set-cookie"].to_str().unwrap().contains("Secure"),
        "behind the proxy"
    );
    s.stop().await;
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "p22").await;
    let r = call(
        &s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": t.admin_email, "password": PASSWORD})),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(
        !r.headers["set-cookie"].to_str().unwrap().contains("Secure"),
        "an untrusted X-Forwarded-Proto must not be believed"
    );
}

/// Every value of every table, with where it is.
async fn whole_database(db: &masterz::store::Db) -> Vec<String> {
    let sql = match db.backend() {
        masterz::store::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '%_fts%'"
        }
        masterz::store::Backend::Postgres => {
            "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        }
    };
    let tables: Vec<String> = crate::support::on_db!(db, |c| {
        sqlx::query_scalar(sql).fetch_all(&mut *c).await.unwrap()
    });
    let mut out = Vec::new();
    // sqlx's own bookkeeping (binary checksums) holds nothing of ours.
    for t in tables.into_iter().filter(|t| !t.starts_with("_sqlx")) {
        out.extend(table_text(db, &t).await);
    }
    out
}

// P23: channel and SIP credentials are encrypted at rest (no plaintext in any table, nor in the
// SQLite files), never in an API answer, and `masterz admin rotate-key` re-encrypts them under a
// new key with which the server still uses them.
async fn p23_credentials_are_encrypted_at_rest_write_only_and_rotate(backend: Backend) {
    const PAGE: &str = "EAAB-p23-page-token-PLAINTEXT";
    const APP: &str = "p23-app-secret-PLAINTEXT";
    const TRUNK: &str = "p23-trunk-password-PLAINTEXT";
    const SIP: &str = "p23-sip-password-PLAINTEXT";
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "p23").await;
    let tok = t.admin_token.clone();
    let mut answers = Vec::new();
    let page = expect(
        &s,
        Method::POST,
        "/api/v1/channel-accounts",
        &tok,
        Some(
            json!({"kind": "messenger", "name": "Page", "external_id": "10150",
            "credentials": {"access_token": PAGE, "app_secret": APP}}),
        ),
        StatusCode::CREATED,
    )
    .await;
    let page_id = page["id"].as_i64().unwrap();
    assert_eq!(
        page["credential_keys"],
        json!(["access_token", "app_secret"]),
        "{page}"
    );
    answers.push(page.to_string());
    let trunk = expect(
        &s,
        Method::POST,
        "/api/v1/channel-accounts",
        &tok,
        Some(
            json!({"kind": "sip_trunk", "name": "Trunk", "settings": {"host": "127.0.0.1",
            "port": 5999, "transport": "udp", "register": false, "sources": ["127.0.0.1/32"],
            "dids": ["+15551230023"], "username": "p23trunk"}, "credentials": {"password": TRUNK}}),
        ),
        StatusCode::CREATED,
    )
    .await;
    answers.push(trunk.to_string());
    answers.push(
        expect(
            &s,
            Method::PUT,
            &format!("/api/v1/users/{}/sip-credentials", t.agent),
            &tok,
            Some(json!({"username": "p23agent", "password": SIP})),
            StatusCode::OK,
        )
        .await
        .to_string(),
    );
    answers.push(
        expect(
            &s,
            Method::PATCH,
            &format!("/api/v1/channel-accounts/{page_id}"),
            &tok,
            Some(json!({"name": "Page 2"})),
            StatusCode::OK,
        )
        .await
        .to_string(),
    );
    for path in [
        format!("/api/v1/channel-accounts/{page_id}"),
        format!("/api/v1/channel-accounts/{}", trunk["id"]),
        "/api/v1/channel-accounts".into(),
        "/api/v1/trunks".into(),
        "/api/v1/users".into(),
        format!("/api/v1/users/{}", t.agent),
        "/api/v1/audit-logs?limit=200".into(),
    ] {
        let r = call(&s, Method::GET, &path, Some(&tok), None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text);
        answers.push(r.text);
    }
    for a in &answers {
        assert!(
            !a.contains("PLAINTEXT"),
            "a credential in an API answer: {a}"
        );
    }
    let sealed_before = whole_database(s.store()).await;
    let leaks: Vec<&String> = sealed_before
        .iter()
        .filter(|v| v.contains("PLAINTEXT"))
        .collect();
    assert!(leaks.is_empty(), "plaintext at rest: {leaks:?}");
    let stored = |values: &[String]| {
        values
            .iter()
            .find(|v| v.starts_with("channel_accounts.credentials: ") && !v.ends_with(": "))
            .cloned()
            .expect("a stored credential")
    };
    let before = stored(&sealed_before);

    let db = s.stop().await;
    if backend == Backend::Sqlite {
        for entry in std::fs::read_dir(db.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("masterz.db")
            {
                let bytes = std::fs::read(&path).unwrap();
                for plain in [PAGE, APP, TRUNK, SIP] {
                    assert!(
                        !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
                        "{plain} in {}",
                        path.display()
                    );
                }
            }
        }
    }
    let (ok, out, err) = masterz(&db, &["admin", "rotate-key"]);
    assert!(ok && err.contains("re-encrypted"), "{out}{err}");
    let s = TestServer::on(db).await;
    let after = whole_database(s.store()).await;
    assert_ne!(stored(&after), before, "re-encrypted under the new key");
    assert!(!after.iter().any(|v| v.contains("PLAINTEXT")));
    // The server, on the new key alone, still opens them: the channel's token, and the SIP
    // password a phone registers with.
    let state = &s.server.as_ref().unwrap().state;
    let mut c = state.db.conn().await.unwrap();
    let creds =
        masterz::store::channels::credentials(&mut c.ex(), &state.keyring, t.company, page_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(creds.expose()["access_token"], PAGE);
    drop(c);
    let sip = state.telephony.get().expect("SIP").sip_addr;
    let mut ua = crate::raw::RawUa::new(sip, "p23agent", SIP).await;
    let r = ua
        .register_authenticated(&["<sip:p23agent@127.0.0.1:5097>"], Some(60))
        .await;
    assert_eq!(crate::raw::code(&r), 200, "{r}");
}
