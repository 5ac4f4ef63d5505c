//! Browser agents without a browser: str0m (a complete WebRTC stack, full ICE, DTLS-SRTP) plays
//! the web app's part over the agent WebSocket, exactly as docs/agent-websocket.md says a page
//! does. Trunk calls come from SIPp. These run on every test run in seconds and prove signalling,
//! ICE/DTLS, media both ways, recording, presence and the failure paths; tests/calls/browser.rs
//! does the same with Chromium and the real page.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use masterz_media::codec::Codec;
use reqwest::Method;
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::pbx::{CALLER, Pbx, fixture, free_media_port};
use crate::peers::{self, free_port, sipp::Sipp};
use crate::recording::{finished_recordings, goertzel, read_stereo, record_company, voiced};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the agent WebSocket as the owner of `token`, for tab `tab`; returns it and `hello`.
async fn connect(pbx: &Pbx, token: &str, tab: &str) -> (Ws, Value) {
    let mut req = pbx
        .s
        .url(&format!("/api/v1/agent/ws?tab={tab}"))
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = next(&mut ws, |f| f["type"] == "hello").await;
    (ws, hello)
}

/// The next frame that `want` accepts (pings are answered, other frames skipped), within 15 s.
async fn next(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("no such frame within 15 s")
            .expect("socket closed")
            .unwrap();
        let tungstenite::Message::Text(t) = m else {
            continue;
        };
        let f: Value = serde_json::from_str(t.as_str()).unwrap();
        if f["type"] == "ping" {
            send(ws, json!({"type": "pong"})).await;
            continue;
        }
        if want(&f) {
            return f;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(tungstenite::Message::Text(v.to_string().into()))
        .await
        .unwrap();
}

fn call_state<'a>(f: &'a Value, state: &str) -> Option<&'a Value> {
    (f["type"] == "call" && f["call"]["state"] == state).then_some(&f["call"])
}

/// The page's WebRTC stack: str0m with full ICE on its own UDP socket, sending a 1000 Hz tone.
struct Browser {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    mid: Option<Mid>,
    connected: bool,
    /// Decoded audio received.
    heard: Vec<f64>,
    sent: u64,
}

impl Browser {
    /// Answers `offer`; returns the browser and its SDP answer.
    fn answer(offer: &str) -> (Self, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let answer = rtc
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(offer).unwrap())
            .unwrap();
        let b = Self {
            rtc,
            socket,
            addr,
            mid: None,
            connected: false,
            heard: Vec::new(),
            sent: 0,
        };
        (b, answer.to_sdp_string())
    }

    /// Runs the stack: reads the socket, fires timers, sends 20 ms of tone per 20 ms elapsed.
    fn step(&mut self, started: Instant) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.addr,
                    contents: buf[..n].try_into().unwrap(),
                },
            );
            self.rtc.handle_input(input).unwrap();
            self.drain();
        }
        self.rtc
            .handle_input(Input::Timeout(Instant::now()))
            .unwrap();
        self.drain();
        if !self.connected {
            return;
        }
        let due = started.elapsed().as_millis() as u64 / 20;
        while self.sent < due {
            self.sent += 1;
            self.send_tone();
        }
    }

    fn send_tone(&mut self) {
        let Some(mid) = self.mid else { return };
        let Some(w) = self.rtc.writer(mid) else {
            return;
        };
        let Some((pt, codec)) = w.payload_params().next().map(|p| {
            let codec = if *p.pt() == 8 {
                Codec::Pcma
            } else {
                Codec::Pcmu
            };
            (p.pt(), codec)
        }) else {
            return;
        };
        let n0 = self.sent * 160;
        let pcm: Vec<i16> = (0..160)
            .map(|i| {
                let t = (n0 + i) as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            })
            .collect();
        let mut payload = vec![0u8; 160];
        masterz_media::g711::encode(codec, &pcm, &mut payload);
        let time = MediaTime::new(n0, Frequency::EIGHT_KHZ);
        w.write(pt, Instant::now(), time, payload).unwrap();
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return,
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(m)) => self.mid = Some(m.mid),
                Output::Event(Event::MediaData(m)) => {
                    let codec = if *m.pt == 8 { Codec::Pcma } else { Codec::Pcmu };
                    let mut pcm = vec![0i16; m.data.len()];
                    masterz_media::g711::decode(codec, &m.data, &mut pcm);
                    self.heard.extend(pcm.iter().map(|&s| f64::from(s)));
                }
                Output::Event(_) => {}
            }
        }
    }
}

/// Claims the call on `leg` for this tab and answers the offer with a new [`Browser`] (whose
/// stack runs only when it is stepped).
async fn take(ws: &mut Ws, leg: &Value) -> Browser {
    send(ws, json!({"type": "answer", "leg": leg})).await;
    let offer = next(ws, |f| f["type"] == "offer").await;
    let (browser, answer) = Browser::answer(offer["sdp"].as_str().unwrap());
    send(ws, json!({"type": "sdp", "leg": leg, "sdp": answer})).await;
    browser
}

/// Drives `browser` while waiting for a frame that `want` accepts.
async fn drive_until(
    ws: &mut Ws,
    browser: &mut Browser,
    started: Instant,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        browser.step(started);
        match tokio::time::timeout(Duration::from_millis(10), ws.next()).await {
            Ok(Some(Ok(tungstenite::Message::Text(t)))) => {
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                if f["type"] == "ping" {
                    send(ws, json!({"type": "pong"})).await;
                } else if want(&f) {
                    return f;
                }
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("socket ended: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no such frame within 15 s");
    }
}

/// Drives `browser` for `d`, answering pings.
async fn drive_for(ws: &mut Ws, browser: &mut Browser, started: Instant, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        browser.step(started);
        if let Ok(Some(Ok(tungstenite::Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(10), ws.next()).await
        {
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            if f["type"] == "ping" {
                send(ws, json!({"type": "pong"})).await;
            }
        }
    }
}

async fn agents(pbx: &Pbx) -> Vec<Value> {
    pbx.req(Method::GET, "/api/v1/agents")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn presence_of(list: &[Value], id: i64) -> String {
    list.iter()
        .find(|a| a["id"] == id)
        .map(|a| a["presence"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_agent_answers_a_trunk_call_over_webrtc_and_it_is_recorded() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    record_company(&pbx, true).await;
    pbx.local_trunk().await;
    let admin = pbx.t.admin.0;
    let (mut ws, hello) = connect(&pbx, &pbx.t.admin_token.clone(), "tab-one").await;
    assert_eq!(hello["presence"], "available", "{hello}");
    assert_eq!(hello["user"]["id"], admin, "{hello}");
    assert_eq!(presence_of(&agents(&pbx).await, admin), "available");

    let caller = pbx
        .caller(
            &fixture("pcmu_440hz_8s.pcap").display().to_string(),
            8000,
            "1800",
        )
        .spawn();
    let ringing = next(&mut ws, |f| call_state(f, "ringing").is_some()).await;
    let view = &ringing["call"];
    assert_eq!(view["number"], CALLER, "{view}");
    assert_eq!(view["direction"], "in");
    assert!(view["customer_id"].as_i64().is_some(), "{view}");
    let leg = view["leg"].as_str().unwrap().to_owned();

    // A second tab of the same agent sees the call, and cannot take it once the first has.
    let (mut ws2, hello2) = connect(&pbx, &pbx.t.admin_token.clone(), "tab-two").await;
    assert_eq!(hello2["calls"][0]["leg"], leg.as_str(), "{hello2}");
    send(&mut ws, json!({"type": "answer", "leg": leg})).await;
    let offer = next(&mut ws, |f| f["type"] == "offer").await;
    send(&mut ws2, json!({"type": "answer", "leg": leg})).await;
    let refused = next(&mut ws2, |f| f["type"] == "error").await;
    assert!(
        refused["message"].as_str().unwrap().contains("another tab"),
        "{refused}"
    );

    let (mut browser, answer) = Browser::answer(offer["sdp"].as_str().unwrap());
    send(&mut ws, json!({"type": "sdp", "leg": leg, "sdp": answer})).await;
    let started = Instant::now();
    let connected = drive_until(&mut ws, &mut browser, started, |f| {
        call_state(f, "connected").is_some()
    })
    .await;
    assert_eq!(connected["call"]["tab"], "tab-one", "{connected}");
    assert_eq!(presence_of(&agents(&pbx).await, admin), "on_call");

    drive_for(&mut ws, &mut browser, started, Duration::from_secs(3)).await;
    let heard = voiced(&browser.heard, 500.0);
    assert!(
        heard.len() > 8000,
        "the browser heard {} samples",
        heard.len()
    );
    let (f440, f1000) = (goertzel(&heard, 440.0), goertzel(&heard, 1000.0));
    assert!(
        f440 > 10.0 * f1000,
        "the browser hears 440 Hz: {f440} vs {f1000}"
    );

    send(&mut ws, json!({"type": "hangup", "leg": leg})).await;
    let ended = next(&mut ws, |f| call_state(f, "ended").is_some()).await;
    assert_eq!(ended["call"]["reason"], "hangup", "{ended}");
    caller.wait_async().await.assert_success();

    let calls = pbx
        .wait_calls(Duration::from_secs(10), "the call ended", |c| {
            c.len() == 1 && !c[0]["ended_at"].is_null()
        })
        .await;
    assert_eq!(calls[0]["status"], "completed", "{}", calls[0]);
    assert_eq!(calls[0]["agent_user_id"], admin, "{}", calls[0]);
    assert_eq!(calls[0]["hangup_by"], "agent", "{}", calls[0]);
    assert_eq!(presence_of(&agents(&pbx).await, admin), "available");

    let rec = finished_recordings(&pbx, 1).await;
    let (left, right) = read_stereo(&pbx.s.data_dir().join(&rec[0].path));
    let (left, right) = (voiced(&left, 500.0), voiced(&right, 500.0));
    assert!(
        left.len() > 8000 && right.len() > 8000,
        "{} {}",
        left.len(),
        right.len()
    );
    assert!(
        goertzel(&left, 440.0) > 10.0 * goertzel(&left, 1000.0),
        "left is the caller"
    );
    assert!(
        goertzel(&right, 1000.0) > 10.0 * goertzel(&right, 440.0),
        "right is the agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_whose_media_fails_is_dropped_and_another_agent_takes_the_call() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|c| c.webrtc_connect_timeout_secs = 1).await;
    pbx.local_trunk().await;
    let (mut broken, _) = connect(&pbx, &pbx.t.admin_token.clone(), "broken").await;
    let (mut good, _) = connect(&pbx, &pbx.t.agent_token.clone(), "good").await;
    let caller = pbx
        .caller(
            &fixture("pcmu_440hz_8s.pcap").display().to_string(),
            3000,
            "1800",
        )
        .spawn();
    let r1 = next(&mut broken, |f| call_state(f, "ringing").is_some()).await;
    let r2 = next(&mut good, |f| call_state(f, "ringing").is_some()).await;
    let (l1, l2) = (r1["call"]["leg"].clone(), r2["call"]["leg"].clone());

    // Another agent cannot act on this agent's leg: it is not theirs.
    send(&mut good, json!({"type": "answer", "leg": l1})).await;
    let refused = next(&mut good, |f| f["type"] == "error").await;
    assert_eq!(refused["message"], "no such call", "{refused}");

    // The first agent answers with a valid SDP answer but its browser never runs ICE.
    let _silent = take(&mut broken, &l1).await;
    let failed = next(&mut broken, |f| call_state(f, "ended").is_some()).await;
    let reason = failed["call"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("media_failed"), "{failed}");

    // The call still rings the other agent, who takes it.
    let mut browser = take(&mut good, &l2).await;
    let started = Instant::now();
    drive_until(&mut good, &mut browser, started, |f| {
        call_state(f, "connected").is_some()
    })
    .await;
    // The caller hangs up after 3 s of talk: the page hears it.
    let ended = drive_until(&mut good, &mut browser, started, |f| {
        call_state(f, "ended").is_some()
    })
    .await;
    assert_eq!(ended["call"]["reason"], "remote_hangup", "{ended}");
    caller.wait_async().await.assert_success();
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "the call ended", |c| {
            c.len() == 1 && !c[0]["ended_at"].is_null()
        })
        .await;
    assert_eq!(calls[0]["status"], "completed", "{}", calls[0]);
    assert_eq!(calls[0]["agent_user_id"], pbx.t.agent.0, "{}", calls[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_agent_dials_out_through_the_trunk_and_sets_presence() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    // The far end: SIPp answering behind a trunk, echoing the RTP it gets.
    let far_port = free_port();
    let uas = Sipp::scenario("call_agent_uas")
        .local_port(far_port)
        .media_port(free_media_port())
        .rtp_echo()
        .key("talk_ms", "600000")
        .calls(1)
        .timeout(Duration::from_secs(40))
        .spawn();
    pbx.trunk(
        ([127, 0, 0, 1], far_port).into(),
        &["127.0.0.1/32"],
        &[crate::pbx::DID],
        None,
    )
    .await;
    let (mut ws, _) = connect(&pbx, &pbx.t.admin_token.clone(), "dialler").await;
    send(&mut ws, json!({"type": "dial", "number": "+4930123456"})).await;
    let offer = next(&mut ws, |f| f["type"] == "offer").await;
    let leg = offer["leg"].clone();
    let (mut browser, answer) = Browser::answer(offer["sdp"].as_str().unwrap());
    send(&mut ws, json!({"type": "sdp", "leg": leg, "sdp": answer})).await;
    let started = Instant::now();
    let connected = drive_until(&mut ws, &mut browser, started, |f| {
        call_state(f, "connected").is_some()
    })
    .await;
    assert_eq!(connected["call"]["direction"], "out", "{connected}");
    assert_eq!(connected["call"]["number"], "+4930123456", "{connected}");
    drive_for(&mut ws, &mut browser, started, Duration::from_secs(2)).await;
    // The far end echoes: the browser hears its own 1000 Hz.
    let heard = voiced(&browser.heard, 500.0);
    assert!(
        heard.len() > 4000,
        "the browser heard {} samples",
        heard.len()
    );
    assert!(goertzel(&heard, 1000.0) > 10.0 * goertzel(&heard, 440.0));

    // Presence is chosen from the page, and shown to the company.
    let (mut away, _) = connect(&pbx, &pbx.t.agent_token.clone(), "away").await;
    send(&mut away, json!({"type": "presence", "status": "away"})).await;
    next(&mut away, |f| {
        f["type"] == "presence" && f["status"] == "away"
    })
    .await;
    assert_eq!(presence_of(&agents(&pbx).await, pbx.t.agent.0), "away");

    send(&mut ws, json!({"type": "hangup", "leg": leg})).await;
    let ended = next(&mut ws, |f| call_state(f, "ended").is_some()).await;
    assert_eq!(ended["call"]["reason"], "hangup", "{ended}");
    uas.wait_async().await.assert_success();
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "the call ended", |c| {
            c.len() == 1 && !c[0]["ended_at"].is_null()
        })
        .await;
    assert_eq!(calls[0]["direction"], "out", "{}", calls[0]);
    assert_eq!(calls[0]["status"], "completed", "{}", calls[0]);
    let m = calls[0]["rtp_packets_in"].as_i64().unwrap();
    assert!(m > 100, "{}", calls[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_tab_gets_its_call_back_with_new_media() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    pbx.local_trunk().await;
    let token = pbx.t.admin_token.clone();
    let (mut ws, _) = connect(&pbx, &token, "reloaded").await;
    let caller = pbx
        .caller(
            &fixture("pcmu_440hz_8s.pcap").display().to_string(),
            12_000,
            "1800",
        )
        .spawn();
    let ringing = next(&mut ws, |f| call_state(f, "ringing").is_some()).await;
    let leg = ringing["call"]["leg"].clone();
    let mut browser = take(&mut ws, &leg).await;
    let started = Instant::now();
    drive_until(&mut ws, &mut browser, started, |f| {
        call_state(f, "connected").is_some()
    })
    .await;

    // The page reloads: its socket and its WebRTC connection are gone at once.
    drop(browser);
    drop(ws);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut ws, hello) = connect(&pbx, &token, "reloaded").await;
    let call = &hello["calls"][0];
    assert_eq!(
        (&call["leg"], &call["state"], &call["tab"]),
        (&leg, &json!("connected"), &json!("reloaded")),
        "{hello}"
    );
    // It claims the call again and gets a new connection; the caller never noticed.
    let mut browser = take(&mut ws, &leg).await;
    let started = Instant::now();
    drive_for(&mut ws, &mut browser, started, Duration::from_secs(3)).await;
    let heard = voiced(&browser.heard, 500.0);
    assert!(
        heard.len() > 8000,
        "after the reload the browser heard {} samples",
        heard.len()
    );
    assert!(goertzel(&heard, 440.0) > 10.0 * goertzel(&heard, 1000.0));
    let calls = pbx.calls().await;
    assert!(calls[0]["ended_at"].is_null(), "{}", calls[0]);

    send(&mut ws, json!({"type": "hangup", "leg": leg})).await;
    let ended = next(&mut ws, |f| call_state(f, "ended").is_some()).await;
    assert_eq!(ended["call"]["reason"], "hangup", "{ended}");
    caller.wait_async().await.assert_success();
}
