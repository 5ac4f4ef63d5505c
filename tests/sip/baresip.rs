//! baresip, an independent SIP stack (libre), registers with digest auth over UDP, TCP and TLS
//! and shows as online in the API.

use std::time::Duration;

use crate::common::{Backend, TestServer, seed_tenant};
use crate::peers::{
    self,
    baresip::{Baresip, SipTransport, event},
};
use crate::registrar::{give_sip_account, registrations, sip_addr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_over_udp_tcp_and_tls() {
    if !peers::require(peers::BARESIP) {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = crate::common::self_signed_certificate(certs.path(), "127.0.0.1");
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.sip_tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.sip_tls_cert = Some(cert.clone());
        c.sip_tls_key = Some(key.clone());
    })
    .await
    .unwrap();
    let tls_addr = s
        .server
        .as_ref()
        .and_then(|s| s.state.telephony.get())
        .and_then(|t| t.sip_tls_addr)
        .expect("SIP over TLS is listening");
    let t = seed_tenant(s.store(), "acme").await;
    give_sip_account(&s, &t.admin_token, t.agent.0, "ann", "ann-secret-123").await;

    for (transport, registrar, name) in [
        (SipTransport::Udp, sip_addr(&s), "udp"),
        (SipTransport::Tcp, sip_addr(&s), "tcp"),
        (SipTransport::Tls, tls_addr, "tls"),
    ] {
        let mut phone = Baresip::builder("ann", registrar)
            .password("ann-secret-123")
            .transport(transport)
            .regint(600)
            .lifetime(Duration::from_secs(30))
            .start();
        let ok = phone
            .wait_for_event_async(event::REGISTER_OK, Duration::from_secs(15))
            .await;
        assert_eq!(ok["param"], "200 OK", "{ok}");
        let regs = registrations(&s, &t.admin_token).await;
        let mine: Vec<_> = regs.iter().filter(|r| r["transport"] == name).collect();
        assert_eq!(mine.len(), 1, "{name}: {regs:?}\n{}", phone.report());
        assert_eq!(mine[0]["sip_username"], "ann");
        assert!(
            mine[0]["user_agent"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains("baresip"),
            "{:?}",
            mine[0]
        );
        phone.stop(Duration::from_secs(3));
    }
}
