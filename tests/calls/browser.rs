//! The agent web app (`/app/`) in a real browser: headless Chromium driven over WebDriver
//! ([`crate::webdriver`]), its microphone a 1 kHz tone, against a masterz with SIPp trunks.
//! These tests prove, end to end and as an agent sees it:
//!
//! - [`browser_agent_answers_trunk_call`]: a trunk call rings the logged-in, available agent's
//!   page with the caller's number; answered there, the page hears the caller's 440 Hz and
//!   sends RTP back; hung up there, the call is `completed` with a duration and a recording
//!   whose left channel is the caller (440 Hz) and right the page's microphone (1 kHz); the
//!   inbox shows the call in the customer's timeline with a player that seeks (HTTP ranges);
//! - [`browser_agent_dials_out`]: a number dialled in the page is called through the trunk;
//!   the page hears the far end's 440 Hz, the far end gets the page's RTP, the call row counts
//!   packets both ways, and the page's hang-up ends the far end's call;
//! - [`browser_reconnect_and_reload_keep_call`]: the agent WebSocket closing mid-call changes
//!   nothing but the socket: the page reconnects, keeps the same leg `connected`, RTP goes on,
//!   and the server's call is still up; then a reload: the tab claims its call again and gets a
//!   new WebRTC connection, with RTP both ways, and the call never ended;
//! - [`second_tab_cannot_answer_twice`]: two tabs of one agent both ring; once one answered,
//!   the other's `answer` is refused with an `error` frame and gets no media; the call has one
//!   answer.
//!
//! They follow `docs/agent-websocket.md` and the page's DOM contract (`#call-panel`'s
//! `data-state` and `data-leg`, `window.masterz = { socket, pc, remoteStream, state }`, …).
//! Screenshots of the login, a call and the inbox go to `docs/img/` and to
//! [`crate::webdriver::artifacts_dir`]. Every wait is bounded (a minute per test at most) and
//! never a timing assertion; one browser test runs at a time ([`crate::webdriver::exclusive`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::PASSWORD;
use crate::pbx::{
    Agent, CALLER, Pbx, fixture, free_media_port, items, num, text, udp_socket_stats,
};
use crate::peers::{self, free_port, sipp::Sipp};
use crate::recording::{finished_recordings, goertzel, read_stereo, record_company, voiced};
use crate::webdriver::{
    self, Browser, FAKE_MIC_HZ, RTP_STATS, artifacts_dir, peak_frequency_script,
};

/// Logging in, and the socket connecting.
const T_LOGIN: Duration = Duration::from_secs(20);
/// A call reaching the page.
const T_RING: Duration = Duration::from_secs(20);
/// Answer (or dial) to media flowing: ICE and DTLS (10 s at most, server side), plus the
/// trunk's answer for a call out.
const T_CONNECT: Duration = Duration::from_secs(25);
/// The number the page dials.
const NUMBER: &str = "+4930555777";
/// The caller's tone, and how far off the page may measure it (the FFT's bins are 5.9 Hz).
const CALLER_HZ: f64 = 440.0;
const HZ_TOLERANCE: f64 = 15.0;

fn docs_img(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/img")).join(name)
}

fn caller_pcap() -> String {
    fixture("pcmu_440hz_8s.pcap").display().to_string()
}

/// The digits of `s`: a number as the page formats it still contains them.
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// An agent's e-mail as [`Pbx::agent`] makes it (the password is [`PASSWORD`]).
fn email(agent: &Agent) -> String {
    format!("{}@acme.example.com", agent.sip_user)
}

/// Whether the peers of these tests are there (skipped loudly otherwise, failed under CI).
fn peers_installed() -> bool {
    peers::require(peers::SIPP) && webdriver::require()
}

/// Opens the app, logs in as `agent` and waits for the socket; a screenshot of the login form
/// first when `login_shot` is given.
async fn log_in(b: &Browser, pbx: &Pbx, agent: &Agent, login_shot: Option<&[PathBuf]>) {
    b.navigate(&pbx.s.url("/app/")).await;
    b.wait_visible("#login-form", T_LOGIN).await;
    for path in login_shot.unwrap_or_default() {
        b.save_screenshot(path).await;
    }
    b.set_value("#login-email", &email(agent)).await;
    b.set_value("#login-password", PASSWORD).await;
    b.click("#login-submit").await;
    b.wait_present("#ws-status[data-state=connected]", T_LOGIN)
        .await;
}

/// Chooses "available" in the page and waits until the server has it, with a tab connected
/// (`GET /api/v1/agents`).
async fn set_available(b: &Browser, pbx: &Pbx, agent: &Agent) {
    b.select("#presence", "available").await;
    pbx.wait_api("/api/v1/agents", "the agent available in a browser", |v| {
        items(v).iter().any(|a| {
            a["id"] == agent.user.0 && a["presence"] == "available" && a["browser"] == true
        })
    })
    .await;
}

/// Waits for `#call-panel` in state `state`; returns its `data-leg`.
async fn call_panel(b: &Browser, state: &str, timeout: Duration) -> String {
    let p = b
        .wait_present(&format!("#call-panel[data-state={state}]"), timeout)
        .await;
    p.attr("data-leg")
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| panic!("#call-panel has no data-leg: {p:?}"))
        .to_owned()
}

/// Waits until the page's peer connection has counted more than 50 audio packets each way;
/// returns the counters.
async fn rtp_flows(b: &Browser) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = b.eval_async(RTP_STATS, vec![]).await;
        if num(&s, "inbound") > 50 && num(&s, "outbound") > 50 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "RTP in the page (getStats) within 10 s: {s}\n{}",
            b.diagnostics().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Measures what the page hears (`window.masterz.remoteStream`) and checks it is `hz`.
async fn hears(b: &Browser, hz: f64) -> Value {
    b.wait_js(
        "window.masterz.remoteStream with an audio track",
        Duration::from_secs(10),
        "const s = window.masterz && window.masterz.remoteStream;
         return !!(s && s.getAudioTracks().length > 0);",
        vec![],
    )
    .await;
    let m = b
        .eval_async(
            &peak_frequency_script("window.masterz.remoteStream"),
            vec![],
        )
        .await;
    let got = m["hz"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (got - hz).abs() <= HZ_TOLERANCE && m["db"].as_f64().is_some_and(|db| db > -70.0),
        "the page hears {m} (Hz, dBFS), expected a {hz} Hz tone\n{}",
        b.diagnostics().await
    );
    m
}

/// Hangs up in the page and waits for the panel to be done with the call (`ended`, hidden or
/// gone: the page decides how long an ended call stays).
async fn hang_up(b: &Browser) {
    b.click("#call-hangup").await;
    b.wait_js(
        "#call-panel ended after the hang-up",
        Duration::from_secs(10),
        "const p = document.querySelector('#call-panel');
         return !p || p.getAttribute('data-state') === 'ended' || p.hidden || p.offsetParent === null;",
        vec![],
    )
    .await;
}

/// The one call of the company, once `done` holds for it (with its events).
async fn the_call(pbx: &Pbx, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let calls = pbx
        .wait_calls(Duration::from_secs(20), what, |c| {
            c.len() == 1 && done(&c[0])
        })
        .await;
    calls.into_iter().next().expect("one call")
}

/// A trunk whose provider is SIPp running `scenario` on a free port (PCMU, media on
/// `media_port`), taking the company's calls out; no calls come in on it.
async fn provider(
    pbx: &Pbx,
    scenario: &str,
    media_port: u16,
    echo: bool,
) -> crate::peers::sipp::SippProcess {
    let port = free_port();
    let mut s = Sipp::scenario(scenario)
        .local_port(port)
        .service("trunk")
        .media_port(media_port)
        .key("pcap", &caller_pcap())
        .key("talk_ms", "600000")
        .calls(1)
        .timeout(Duration::from_secs(60));
    if echo {
        s = s.rtp_echo();
    }
    let uas = s.spawn();
    pbx.trunk(
        ([127, 0, 0, 1], port).into(),
        &["10.9.9.9/32"],
        &["+15551237777"],
        None,
    )
    .await;
    uas
}

/// Records every frame the page's current socket receives into `window.__frames`.
const CAPTURE_FRAMES: &str = "
  const s = window.masterz && window.masterz.socket;
  if (!s) return false;
  window.__frames = [];
  s.addEventListener('message', (e) => {
    try { window.__frames.push(JSON.parse(e.data)); } catch (x) { window.__frames.push({unparsed: String(e.data)}); }
  });
  return true;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_agent_answers_trunk_call() {
    if !peers_installed() {
        return;
    }
    let _one = webdriver::exclusive().await;
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("ada").await;
    record_company(&pbx, true).await;
    pbx.local_trunk().await;

    let b = Browser::start("agent-answers").await;
    let login_shots = [
        docs_img("agent-login.png"),
        artifacts_dir().join("agent-login.png"),
    ];
    log_in(&b, &pbx, &agent, Some(&login_shots)).await;
    set_available(&b, &pbx, &agent).await;

    // The caller talks for 20 s at most: the agent hangs up first.
    let caller = pbx.caller(&caller_pcap(), 20_000, "1800").spawn();
    let leg = call_panel(&b, "ringing", T_RING).await;
    let shown = b.text("#call-number").await;
    assert!(
        digits(&shown).contains(&digits(CALLER)),
        "#call-number shows {shown:?}, not the caller {CALLER}"
    );
    b.click("#call-answer").await;
    assert_eq!(call_panel(&b, "connected", T_CONNECT).await, leg);
    let connected = std::time::Instant::now();

    // The caller's tone in the page, RTP both ways.
    hears(&b, CALLER_HZ).await;
    rtp_flows(&b).await;
    for path in [
        docs_img("agent-call.png"),
        artifacts_dir().join("agent-call.png"),
    ] {
        b.save_screenshot(&path).await;
    }
    // The recording is checked for 2 s of each side below: talk for at least 5 s, however
    // quickly the page heard the tone (CI once hung up after 1.97 s of microphone audio).
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(connected.elapsed())).await;
    hang_up(&b).await;
    let caller = caller.wait_async().await;
    caller.assert_success();
    assert!(
        caller.logs.contains("bye-in"),
        "masterz ended the caller's call when the agent hung up\n{caller}"
    );

    // The call: completed by the agent, with a duration in the customer's timeline.
    let call = the_call(&pbx, "one completed call", |c| c["status"] == "completed").await;
    let call_id = num(&call, "id");
    assert_eq!(text(&call, "direction"), "in", "{call:#}");
    assert_eq!(call["agent_user_id"], agent.user.0, "{call:#}");
    assert!(
        call["answered_at"].is_string() && call["ended_at"].is_string(),
        "{call:#}"
    );
    assert_eq!(text(&call, "hangup_by"), "agent", "{call:#}");
    let customer = call["customer_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the caller became no customer: {call:#}"));
    let timeline = pbx.timeline(customer).await;
    let item = timeline
        .iter()
        .find(|i| i["kind"] == "call" && i["id"] == call_id)
        .unwrap_or_else(|| panic!("the call is not in the timeline: {timeline:#?}"));
    assert!(item["duration_secs"].is_i64(), "{item:#}");

    // The recording, through the API: the caller left (440 Hz), the page's microphone right.
    finished_recordings(&pbx, 1).await;
    let list = pbx
        .wait_api(
            &format!("/api/v1/recordings?call_id={call_id}"),
            "the call's recording",
            |v| items(v).len() == 1,
        )
        .await;
    let rec = items(&list).remove(0);
    let rec_id = num(&rec, "id");
    assert_eq!(text(&rec, "status"), "complete", "{rec:#}");
    let url = text(&rec, "url");
    assert_eq!(url, format!("/api/v1/recordings/{rec_id}"), "{rec:#}");
    let r = pbx.req(Method::GET, &url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let wav = pbx.s.data_dir().join("downloaded.wav");
    std::fs::write(&wav, r.bytes().await.unwrap()).unwrap();
    let (left, right) = read_stereo(&wav);
    // The browser's microphone goes through its audio processing: a lower floor, a smaller margin.
    let (l, r) = (voiced(&left, 2000.0), voiced(&right, 300.0));
    assert!(
        l.len() >= 8000 * 2,
        "under 2 s of caller audio: {}",
        l.len()
    );
    assert!(r.len() >= 8000 * 2, "under 2 s of agent audio: {}", r.len());
    let (l440, l1k) = (goertzel(&l, CALLER_HZ), goertzel(&l, FAKE_MIC_HZ));
    let (r440, r1k) = (goertzel(&r, CALLER_HZ), goertzel(&r, FAKE_MIC_HZ));
    assert!(l440 > 100.0 * l1k, "left: 440 Hz {l440:e} vs 1 kHz {l1k:e}");
    assert!(r1k > 10.0 * r440, "right: 1 kHz {r1k:e} vs 440 Hz {r440:e}");

    // The inbox: the customer's conversation shows the call, whose recording plays and seeks.
    let r = pbx
        .req(Method::POST, "/api/v1/conversations")
        .json(
            &json!({"customer_id": customer, "subject": "Call back", "assignee_id": agent.user.0}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let conv: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{conv:#}");
    let conv = num(&conv, "id");
    b.navigate(&pbx.s.url("/app/")).await;
    b.wait_present("#ws-status[data-state=connected]", T_LOGIN)
        .await;
    b.click("#filter-mine").await;
    let row = format!("#conversations .conversation[data-id=\"{conv}\"]");
    b.wait_visible(&row, Duration::from_secs(10)).await;
    b.click(&row).await;
    let item = format!("#timeline .timeline-item[data-kind=\"call\"][data-id=\"{call_id}\"]");
    b.wait_present(&item, Duration::from_secs(10)).await;
    b.wait_present(&format!("{item} .call-duration"), Duration::from_secs(5))
        .await;
    let player = format!("{item} audio.recording-player");
    b.wait_present(&player, Duration::from_secs(10)).await;
    let src = b.find(&player).await.property("src").await;
    assert!(
        src.as_str().is_some_and(|s| s.ends_with(&url)),
        "the player plays {src}, not {url}"
    );
    let played = b
        .eval_async(
            "const a = document.querySelector(arguments[0]);
             const on = (ev) => new Promise((ok, fail) => {
               const t = setTimeout(() => fail(new Error('no ' + ev + ': readyState ' + a.readyState
                 + ', networkState ' + a.networkState + ', error ' + (a.error && a.error.code))), 10000);
               a.addEventListener(ev, () => { clearTimeout(t); ok(); }, {once: true});
             });
             if (a.readyState < 1) { a.preload = 'auto'; const meta = on('loadedmetadata'); a.load(); await meta; }
             const seeked = on('seeked');
             a.currentTime = 1.0;
             await seeked;
             if (a.readyState < 2) await on('canplay');
             return {duration: a.duration, currentTime: a.currentTime, readyState: a.readyState,
                     seekableEnd: a.seekable.length ? a.seekable.end(a.seekable.length - 1) : 0};",
            vec![json!(player)],
        )
        .await;
    assert!(
        played["readyState"].as_i64() >= Some(2)
            && played["currentTime"]
                .as_f64()
                .is_some_and(|t| (t - 1.0).abs() < 0.1)
            && played["seekableEnd"].as_f64().is_some_and(|t| t > 1.0),
        "the recording does not seek in the page: {played}"
    );
    // The browser fetched it with ranges, as the agent (audited per request).
    let audit = pbx
        .wait_api(
            "/api/v1/audit-logs?limit=200",
            "the agent's playback",
            |v| {
                items(v).iter().any(|r| {
                    r["action"] == "play"
                        && r["entity_id"] == rec_id
                        && r["actor_id"] == agent.user.0
                })
            },
        )
        .await;
    let ranged = items(&audit).iter().any(|r| {
        let changes = match &r["changes"] {
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            v => v.clone(),
        };
        r["action"] == "play" && r["actor_id"] == agent.user.0 && changes["range"].is_string()
    });
    assert!(ranged, "no range request from the page: {audit:#}");
    for path in [
        docs_img("agent-inbox.png"),
        artifacts_dir().join("agent-inbox.png"),
    ] {
        b.save_screenshot(&path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_agent_dials_out() {
    if !peers_installed() {
        return;
    }
    let _one = webdriver::exclusive().await;
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("dialer").await;
    // The far end answers and plays 440 Hz; it does not read its media socket, so what the
    // page sends stays queued there, where the kernel counts it.
    let far_media = free_media_port();
    let far = provider(&pbx, "call_agent_uas_play", far_media, false).await;
    let b = Browser::start("agent-dials").await;
    log_in(&b, &pbx, &agent, None).await;
    set_available(&b, &pbx, &agent).await;

    b.set_value("#dial-number", NUMBER).await;
    b.click("#dial-submit").await;
    let leg = call_panel(&b, "connected", T_CONNECT).await;
    let shown = b.text("#call-number").await;
    assert!(
        digits(&shown).contains(&digits(NUMBER)),
        "#call-number shows {shown:?}, not {NUMBER}"
    );
    hears(&b, CALLER_HZ).await;
    rtp_flows(&b).await;
    let (queued, dropped) = udp_socket_stats(far_media).unwrap_or_default();
    assert!(
        queued > 0 || dropped > 0,
        "none of the page's RTP reached the far end's media port"
    );
    assert_eq!(
        b.find("#call-panel")
            .await
            .attribute("data-leg")
            .await
            .as_deref(),
        Some(leg.as_str())
    );
    hang_up(&b).await;
    let far = far.wait_async().await;
    far.assert_success();
    assert!(
        far.logs.contains("bye-in"),
        "the page's hang-up reached the far end\n{far}"
    );
    assert!(
        far.received()
            .iter()
            .any(|m| m.starts_with(&format!("INVITE sip:{NUMBER}@"))),
        "the trunk was not asked for {NUMBER}\n{far}"
    );

    let call = the_call(&pbx, "one completed call", |c| c["status"] == "completed").await;
    assert_eq!(text(&call, "direction"), "out", "{call:#}");
    assert_eq!(call["agent_user_id"], agent.user.0, "{call:#}");
    assert!(text(&call, "to_uri").contains(NUMBER), "{call:#}");
    assert!(
        num(&call, "rtp_packets_in") >= 50 && num(&call, "rtp_packets_out") >= 50,
        "the call row counts no RTP both ways: {call:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_reconnect_and_reload_keep_call() {
    if !peers_installed() {
        return;
    }
    let _one = webdriver::exclusive().await;
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("steady").await;
    // The far end echoes the page's tone: RTP flows both ways for as long as the call lasts.
    let far = provider(&pbx, "call_agent_uas", free_media_port(), true).await;
    let b = Browser::start("agent-reconnects").await;
    log_in(&b, &pbx, &agent, None).await;
    set_available(&b, &pbx, &agent).await;
    b.set_value("#dial-number", NUMBER).await;
    b.click("#dial-submit").await;
    let leg = call_panel(&b, "connected", T_CONNECT).await;
    rtp_flows(&b).await;
    let call = the_call(&pbx, "one answered call", |c| c["status"] == "answered").await;
    let call_id = num(&call, "id");

    // Every state #ws-status goes through, however briefly; then the socket drops.
    b.execute(
        "window.__wsStates = [];
         // The whole document: the page may replace the element rather than change it.
         const seen = () => {
           const el = document.querySelector('#ws-status');
           const state = el && el.getAttribute('data-state');
           if (window.__wsStates[window.__wsStates.length - 1] !== state) window.__wsStates.push(state);
         };
         new MutationObserver(seen).observe(document.documentElement,
           {attributes: true, attributeFilter: ['data-state'], childList: true, subtree: true});
         window.__oldSocket = window.masterz.socket;
         window.masterz.socket.close();
         return true;",
        vec![],
    )
    .await;
    b.wait_js(
        "#ws-status reconnecting, then connected on a new socket",
        Duration::from_secs(20),
        "const s = window.__wsStates || [];
         const el = document.querySelector('#ws-status');
         const sock = window.masterz && window.masterz.socket;
         return s.includes('reconnecting') && el.getAttribute('data-state') === 'connected'
           && sock && sock !== window.__oldSocket && sock.readyState === 1;",
        vec![],
    )
    .await;

    // The same leg, still connected; media went on; the server's call is still up.
    let p = b.probe("#call-panel").await.expect("#call-panel");
    assert_eq!(p.attr("data-state"), Some("connected"), "{p:?}");
    assert_eq!(p.attr("data-leg"), Some(leg.as_str()), "{p:?}");
    let before = b.eval_async(RTP_STATS, vec![]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = b.eval_async(RTP_STATS, vec![]).await;
    assert!(
        num(&after, "inbound") > num(&before, "inbound"),
        "no RTP came in after the reconnect: {before} then {after}"
    );
    let call = pbx.call(call_id).await;
    assert!(
        call["ended_at"].is_null(),
        "the call ended with the socket: {call:#}"
    );
    assert_eq!(text(&call, "status"), "answered", "{call:#}");

    // A reload: the page and its WebRTC connection go at once. The tab keeps its id, claims
    // its call again and gets a new connection; the call itself never ended.
    b.execute(
        "setTimeout(() => location.reload(), 0); return true;",
        vec![],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = call_panel(&b, "connected", T_CONNECT).await;
    assert_eq!(again, leg, "the reloaded page shows another call");
    rtp_flows(&b).await;
    let call = pbx.call(call_id).await;
    assert!(
        call["ended_at"].is_null(),
        "the call ended with the reload: {call:#}"
    );

    hang_up(&b).await;
    let far = far.wait_async().await;
    far.assert_success();
    assert!(far.logs.contains("bye-in"), "{far}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_tab_cannot_answer_twice() {
    if !peers_installed() {
        return;
    }
    let _one = webdriver::exclusive().await;
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("twotabs").await;
    pbx.local_trunk().await;
    let one = Browser::start("tab-one").await;
    let two = Browser::start("tab-two").await;
    log_in(&one, &pbx, &agent, None).await;
    log_in(&two, &pbx, &agent, None).await;
    set_available(&one, &pbx, &agent).await;

    let caller = pbx.caller(&caller_pcap(), 20_000, "1800").spawn();
    let leg = call_panel(&one, "ringing", T_RING).await;
    assert_eq!(
        call_panel(&two, "ringing", T_RING).await,
        leg,
        "both tabs ring the agent's one leg"
    );
    assert_eq!(two.execute(CAPTURE_FRAMES, vec![]).await, true);
    one.click("#call-answer").await;
    call_panel(&one, "connected", T_CONNECT).await;
    rtp_flows(&one).await;

    // The second tab tries too: by its button if it still shows one, and by the frame.
    if let Some(button) = two.try_find("#call-answer").await
        && button.displayed().await
    {
        let _ = button.try_click().await;
    }
    two.execute(
        "window.masterz.socket.send(JSON.stringify({type: 'answer', leg: arguments[0]})); return true;",
        vec![json!(leg)],
    )
    .await;
    let refused = two
        .wait_js(
            "an error frame for the second answer",
            Duration::from_secs(10),
            "return (window.__frames || []).find((f) => f.type === 'error' && f.leg === arguments[0]) || null;",
            vec![json!(leg)],
        )
        .await;
    assert!(!text(&refused, "message").is_empty(), "{refused}");
    let frames = two.execute("return window.__frames;", vec![]).await;
    assert!(
        !items(&frames).iter().any(|f| f["type"] == "offer"),
        "the second tab got an offer: {frames:#}"
    );
    let second = two.eval_async(RTP_STATS, vec![]).await;
    assert!(
        second["connection"] != "connected" && num(&second, "inbound") == 0,
        "the second tab has media: {second}"
    );
    // The first tab keeps the call.
    let p = one.probe("#call-panel").await.expect("#call-panel");
    assert_eq!(p.attr("data-state"), Some("connected"), "{p:?}");

    hang_up(&one).await;
    caller.wait_async().await.assert_success();
    let call = the_call(&pbx, "one completed call", |c| c["status"] == "completed").await;
    let answers = crate::pbx::event_kinds(&call)
        .iter()
        .filter(|k| *k == "answered")
        .count();
    assert_eq!(answers, 1, "{call:#}");
    assert_eq!(call["agent_user_id"], agent.user.0, "{call:#}");
}
