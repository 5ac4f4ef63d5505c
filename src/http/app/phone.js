// The agent WebSocket (docs/agent-websocket.md) and the browser's WebRTC legs.
//
// One socket per tab, reopened after every close with backoff (0.5 s, 1 s, 2 s, 4 s, then 5 s).
// Every `hello` is the whole truth: it replaces the call list and the presence. The media does not
// travel over the socket, so a reconnect leaves every RTCPeerConnection alone: a call survives a
// network blip. No DOM here but the remote <audio>; the panels listen to `on("change")`.

import { api } from "./api.js";

const TAB_KEY = "masterz.tab";
const TAB_RE = /^[A-Za-z0-9_-]{1,64}$/;
const BACKOFF_MS = [500, 1000, 2000, 4000, 5000];
// The server pings every 20 s: silence for this long means the connection is dead even when the
// browser has not noticed (a laptop resumed, a Wi-Fi switch).
const SILENCE_MS = 50_000;
const ICE_GATHERING_MAX_MS = 1000;
const PRESENCES = new Set(["available", "away", "on_call"]);

/** The state the page shows, also exposed to tests as window.masterz.state. */
export const state = {
  tab: null,
  /** `connected` once the hello of the current socket arrived, else `reconnecting`. */
  connection: "reconnecting",
  user: null,
  /** What the server says: `available`, `away` or `on_call`. */
  presence: null,
  /** What the agent chose (the select shows it; `on_call` is the server's). */
  chosenPresence: "available",
  /** The agent's calls that are ringing or in progress, as the server last described them. */
  calls: [],
  /** The leg the call panel shows when the agent picked one, else null (see currentCall). */
  focus: null,
  /** The last call that ended, with `ended_local_at` (ms). */
  lastEnded: null,
  /** The last `error` frame: {leg, message, at}. */
  lastError: null,
  /** Legs whose microphone is muted. */
  muted: {},
  /** leg → the RTCPeerConnection's connectionState. */
  media: {},
};

const listeners = new Map();

/** Calls `fn(...args)` on `event`: `change`, `call` (call, previous), `ended` (call), `error`
 * ({leg, message}), `media` (leg, connectionState). */
export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
}

function emit(event, ...args) {
  for (const fn of listeners.get(event) || []) {
    try {
      fn(...args);
    } catch (e) {
      console.error(`masterz: a ${event} listener failed`, e);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The tab id

function newTabId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function loadTabId() {
  let id = null;
  try {
    id = sessionStorage.getItem(TAB_KEY);
  } catch {
    // Storage can be disabled; the tab then gets a new id per load.
  }
  if (!id || !TAB_RE.test(id)) id = storeTabId(newTabId());
  return id;
}

function storeTabId(id) {
  try {
    sessionStorage.setItem(TAB_KEY, id);
  } catch {
    // See loadTabId.
  }
  return id;
}

// "Duplicate tab" copies sessionStorage, so the copy would share the tab id, and with it the
// calls of the original. A new page asks the other tabs whether its id is taken; only the
// newcomer changes its id, so the original keeps its calls.
const tabChannel = typeof BroadcastChannel === "function" ? new BroadcastChannel("masterz-tabs") : null;
const nonce = newTabId();
if (tabChannel) {
  tabChannel.onmessage = (event) => {
    const d = event.data;
    if (!d || typeof d !== "object" || !state.tab) return;
    if (d.type === "claim" && d.tab === state.tab && d.nonce !== nonce) {
      tabChannel.postMessage({ type: "taken", tab: d.tab, nonce: d.nonce });
    }
  };
}

function ensureUniqueTab() {
  if (!tabChannel) return Promise.resolve();
  return new Promise((resolve) => {
    const probe = new BroadcastChannel("masterz-tabs");
    const done = () => {
      probe.close();
      resolve();
    };
    probe.onmessage = (event) => {
      const d = event.data;
      if (d && d.type === "taken" && d.nonce === nonce && d.tab === state.tab) {
        state.tab = storeTabId(newTabId());
        done();
      }
    };
    probe.postMessage({ type: "claim", tab: state.tab, nonce });
    setTimeout(done, 150);
  });
}

// ---------------------------------------------------------------------------------------------
// The socket

let socket = null;
let stopped = true;
let attempt = 0;
let retryTimer = null;
let silenceTimer = null;

/** Opens the socket (after login). */
export async function start() {
  if (!stopped) return;
  stopped = false;
  state.tab = loadTabId();
  await ensureUniqueTab();
  if (!stopped) connect();
}

/** Closes the socket for good and drops every call's media (logout). */
export function stop() {
  stopped = true;
  clearTimeout(retryTimer);
  retryTimer = null;
  clearTimeout(silenceTimer);
  const ws = socket;
  socket = null;
  if (ws) {
    try {
      ws.close(1000, "logout");
    } catch {
      // Already closing.
    }
  }
  for (const leg of [...legs.keys()]) endMedia(leg);
  Object.assign(state, {
    connection: "reconnecting",
    user: null,
    presence: null,
    calls: [],
    focus: null,
    lastEnded: null,
    lastError: null,
    muted: {},
    media: {},
  });
  emit("change");
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/agent/ws?tab=${encodeURIComponent(state.tab)}`;
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (stopped || socket) return;
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (e) {
    console.error("masterz: cannot open the WebSocket", e);
    scheduleReconnect();
    return;
  }
  socket = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    listenForSilence(ws);
  };
  ws.onmessage = (event) => {
    if (ws !== socket) return;
    listenForSilence(ws);
    onFrame(event.data);
  };
  ws.onerror = () => {
    // A close event follows; that is where reconnecting starts.
  };
  ws.onclose = () => {
    if (ws !== socket) return;
    lost();
    // Refused before the upgrade: maybe the session ended (401). Asking /auth/me finds out, and a
    // 401 there sends the agent back to the login form.
    if (!opened && !stopped) api.get("/auth/me").catch(() => {});
  };
}

function lost() {
  socket = null;
  clearTimeout(silenceTimer);
  if (state.connection !== "reconnecting") {
    state.connection = "reconnecting";
    emit("change");
  }
  scheduleReconnect();
}

function scheduleReconnect() {
  if (stopped || retryTimer) return;
  const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  attempt += 1;
  retryTimer = setTimeout(connect, delay);
}

function listenForSilence(ws) {
  clearTimeout(silenceTimer);
  silenceTimer = setTimeout(() => {
    if (ws !== socket) return;
    console.warn("masterz: no frame for 50 s; reconnecting");
    ws.onclose = null;
    try {
      ws.close(4000, "silent");
    } catch {
      // Already closing.
    }
    lost();
  }, SILENCE_MS);
}

window.addEventListener("online", () => {
  // The network is back: try now rather than at the end of the backoff.
  if (!stopped && !socket) {
    attempt = 0;
    connect();
  }
});

/** The current WebSocket (null while reconnecting). */
export function currentSocket() {
  return socket;
}

/** Sends a frame; false when the socket is not open. */
export function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  try {
    socket.send(JSON.stringify(frame));
    return true;
  } catch (e) {
    console.error("masterz: send failed", e);
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Frames from the server

function onFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    console.warn("masterz: a frame that is not JSON was ignored");
    return;
  }
  if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
  try {
    switch (frame.type) {
      case "hello":
        onHello(frame);
        break;
      case "ping":
        send({ type: "pong" });
        break;
      case "pong":
        break;
      case "presence":
        onPresence(frame.status);
        emit("change");
        break;
      case "call":
        onCall(frame.call);
        break;
      case "offer":
        onOffer(frame);
        break;
      case "error":
        onError(frame);
        break;
      case "message":
        // A message was added or changed (a reply's status, a customer's new message).
        emit("message", frame.message);
        break;
      case "channel":
        emit("channel", frame.account);
        break;
      case "suggestion":
        // An AI reply suggestion was made or used (only channels the business opted in).
        emit("suggestion", frame.suggestion);
        break;
      default:
        console.debug("masterz: unknown frame type ignored:", frame.type);
    }
  } catch (e) {
    // A frame this page does not understand must not stop the next ones.
    console.error("masterz: a frame could not be handled", frame.type, e);
  }
}

/** A call view from the server with the fields this page relies on checked; null if unusable. */
function normalizeCall(raw) {
  if (!raw || typeof raw !== "object") return null;
  if (typeof raw.leg !== "string" && typeof raw.leg !== "number") return null;
  return {
    ...raw,
    leg: String(raw.leg),
    state: typeof raw.state === "string" ? raw.state : "connecting",
    direction: raw.direction === "out" ? "out" : "in",
    number: typeof raw.number === "string" ? raw.number : "",
    name: typeof raw.name === "string" && raw.name ? raw.name : null,
    customer_id: Number.isInteger(raw.customer_id) ? raw.customer_id : null,
    tab: typeof raw.tab === "string" && raw.tab ? raw.tab : null,
    held: raw.held === true,
  };
}

function onHello(frame) {
  if (frame.user && typeof frame.user === "object") state.user = frame.user;
  onPresence(frame.presence);
  const calls = (Array.isArray(frame.calls) ? frame.calls : [])
    .map(normalizeCall)
    .filter((c) => c && c.state !== "ended");
  for (const call of calls) {
    // Keep the local start of a call that was already connected before the reconnect.
    const before = findCall(call.leg);
    if (call.state === "connected" && !(before && before.state === "connected")) {
      talkStart.delete(call.leg);
    }
  }
  state.calls = calls;
  if (state.focus && !findCall(state.focus)) state.focus = null;
  // Media of a call that ended while the socket was down, or that another tab now owns, goes;
  // media of a call this tab still owns stays exactly as it is.
  for (const leg of [...legs.keys()]) {
    const call = findCall(leg);
    if (!call || (call.tab && call.tab !== state.tab)) endMedia(leg);
  }
  // A call this tab owns but has no media for (the page was reloaded): claim it again; the
  // server offers a new connection while the call goes on.
  for (const call of calls) {
    if (call.tab === state.tab && call.state === "connected" && !legs.has(call.leg)) {
      send({ type: "answer", leg: call.leg });
    }
  }
  attempt = 0;
  state.connection = "connected";
  emit("change");
}

function onPresence(status) {
  if (!PRESENCES.has(status)) return;
  state.presence = status;
  if (status !== "on_call") state.chosenPresence = status;
}

// Local time each call became connected while this page watched, for a timer that does not
// depend on the server's clock; calls seen connected in a hello use answered_at instead.
const talkStart = new Map();

function onCall(raw) {
  const call = normalizeCall(raw);
  if (!call) return;
  const previous = findCall(call.leg);
  if (call.state === "ended") {
    state.calls = state.calls.filter((c) => c.leg !== call.leg);
    endMedia(call.leg);
    talkStart.delete(call.leg);
    delete state.muted[call.leg];
    if (state.focus === call.leg) state.focus = null;
    state.lastEnded = { ...call, ended_local_at: Date.now() };
    emit("ended", call, previous);
  } else {
    if (call.state === "connected" && (!previous || previous.state !== "connected")) {
      talkStart.set(call.leg, previous ? Date.now() : null);
    }
    state.calls = previous
      ? state.calls.map((c) => (c.leg === call.leg ? call : c))
      : [...state.calls, call];
    // Another tab took a call this one was setting up: its media here is useless.
    if (call.tab && call.tab !== state.tab && legs.has(call.leg)) endMedia(call.leg);
    emit("call", call, previous);
  }
  emit("change");
}

function onError(frame) {
  const message = typeof frame.message === "string" && frame.message ? frame.message : "refused";
  const leg = frame.leg === undefined || frame.leg === null ? null : String(frame.leg);
  state.lastError = { leg, message, at: Date.now() };
  emit("error", { leg, message });
  emit("change");
}

/** The call with this leg, if any. */
export function findCall(leg) {
  return state.calls.find((c) => c.leg === leg) || null;
}

/** Whether this tab owns the call (answered or dialled it here). */
export function ownsCall(call) {
  return !!call && call.tab === state.tab;
}

/**
 * The call the panel shows: the one the agent picked, else one this tab is talking on, else a
 * ringing one, else any.
 */
export function currentCall() {
  const picked = state.focus && findCall(state.focus);
  if (picked) return picked;
  const live = (c) => c.state === "connected" || c.state === "connecting";
  return (
    state.calls.find((c) => ownsCall(c) && live(c)) ||
    state.calls.find((c) => c.state === "ringing" && (c.direction === "out" ? ownsCall(c) : !c.tab)) ||
    state.calls.find(live) ||
    state.calls[0] ||
    null
  );
}

/** Unix ms the call's talk time counts from, or null before it is connected. */
export function talkStartOf(call) {
  if (!call || call.state !== "connected") return null;
  const local = talkStart.get(call.leg);
  if (local) return local;
  const server = Number(call.answered_at);
  // Clamped: a server clock ahead of this one must not show a negative time.
  return Number.isFinite(server) && server > 0 ? Math.min(server, Date.now()) : Date.now();
}

// ---------------------------------------------------------------------------------------------
// Commands

export const answer = (leg) => send({ type: "answer", leg });
export const decline = (leg) => send({ type: "decline", leg });
export const hangup = (leg) => send({ type: "hangup", leg });
export const hold = (leg, on) => send({ type: "hold", leg, on: !!on });
export const dtmf = (leg, digits) => send({ type: "dtmf", leg, digits });
export const transfer = (leg, to) => send({ type: "transfer", leg, to: String(to) });
export const dial = (number) => send({ type: "dial", number });

/** Sets the agent's presence: over the socket, or over REST while it is down. */
export async function setPresence(status) {
  if (status !== "available" && status !== "away") return;
  state.chosenPresence = status;
  if (state.presence !== "on_call") state.presence = status;
  emit("change");
  if (!send({ type: "presence", status })) {
    await api.put("/agents/me/presence", { status });
  }
}

/** Mutes or unmutes this tab's microphone on a call (the server does not know). */
export function setMuted(leg, muted) {
  if (muted) state.muted[leg] = true;
  else delete state.muted[leg];
  const m = legs.get(leg);
  if (m && m.mic) for (const track of m.mic.getAudioTracks()) track.enabled = !muted;
  emit("change");
}

// ---------------------------------------------------------------------------------------------
// WebRTC

/** leg → {leg, pc, mic, remote, chain, closed} */
const legs = new Map();
/** The leg whose remote audio plays in #remote-audio. */
let playing = null;

function legMedia(leg) {
  let m = legs.get(leg);
  if (!m) {
    m = { leg, pc: null, mic: null, remote: null, chain: Promise.resolve(), closed: false };
    legs.set(leg, m);
  }
  return m;
}

function onOffer(frame) {
  if ((typeof frame.leg !== "string" && typeof frame.leg !== "number") || typeof frame.sdp !== "string") {
    return;
  }
  const m = legMedia(String(frame.leg));
  // Offers of one leg are answered one after the other.
  m.chain = m.chain
    .then(() => negotiate(m, frame.sdp))
    .catch((e) => {
      console.error("masterz: answering the offer failed", e);
      reportMedia(m.leg, `Audio could not be set up: ${e && e.message ? e.message : e}`);
    });
}

async function negotiate(m, sdp) {
  if (m.closed) return;
  if (!m.mic) {
    try {
      m.mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      microphoneFailed(m, e);
      return;
    }
  }
  if (m.closed) {
    stopTracks(m.mic);
    return;
  }
  if (m.pc && m.pc.signalingState !== "closed") {
    // A new offer on a live connection (renegotiation): answer it on the same connection; if
    // that is refused, start over with a fresh one.
    try {
      await answerOffer(m, m.pc, sdp);
      return;
    } catch (e) {
      console.warn("masterz: renegotiation failed; new connection", e);
      closePc(m);
    }
  }
  m.pc = newPeerConnection(m);
  await answerOffer(m, m.pc, sdp);
}

function newPeerConnection(m) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  m.remote = new MediaStream();
  pc.ontrack = (event) => {
    if (pc !== m.pc) return;
    const stream = event.streams && event.streams[0];
    if (stream) m.remote = stream;
    else if (!m.remote.getTracks().includes(event.track)) m.remote.addTrack(event.track);
    play(m);
  };
  pc.onconnectionstatechange = () => {
    if (pc !== m.pc) return;
    state.media[m.leg] = pc.connectionState;
    emit("media", m.leg, pc.connectionState);
    emit("change");
  };
  state.media[m.leg] = pc.connectionState;
  return pc;
}

async function answerOffer(m, pc, sdp) {
  await pc.setRemoteDescription({ type: "offer", sdp });
  const track = m.mic.getAudioTracks()[0];
  if (track) {
    track.enabled = !state.muted[m.leg];
    const transceiver = pc
      .getTransceivers()
      .find((t) => !t.stopped && t.receiver && t.receiver.track && t.receiver.track.kind === "audio");
    if (transceiver) {
      if (transceiver.sender.track !== track) await transceiver.sender.replaceTrack(track);
      transceiver.direction = "sendrecv";
    } else {
      pc.addTrack(track, m.mic);
    }
  }
  const answerSdp = await pc.createAnswer();
  await pc.setLocalDescription(answerSdp);
  await iceGathered(pc, ICE_GATHERING_MAX_MS);
  if (m.closed || pc !== m.pc) return;
  send({ type: "sdp", leg: m.leg, sdp: pc.localDescription.sdp });
}

/** Resolves when ICE gathering is complete, or after `maxMs`: host candidates are enough. */
function iceGathered(pc, maxMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, maxMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function microphoneFailed(m, error) {
  const why = !window.isSecureContext
    ? "the page is not on HTTPS, and browsers give the microphone only to secure pages"
    : error && error.name === "NotAllowedError"
    ? "the browser was not allowed to use the microphone"
    : error && error.name === "NotFoundError"
      ? "no microphone was found"
      : (error && error.message) || "unknown error";
  reportMedia(m.leg, `Microphone unavailable: ${why}.`);
  // Without a microphone the agent cannot talk: an incoming call goes back to ringing the other
  // agents, an outgoing one is given up.
  const call = findCall(m.leg);
  if (call && call.direction === "in") decline(m.leg);
  else hangup(m.leg);
  endMedia(m.leg);
}

function reportMedia(leg, message) {
  state.lastError = { leg, message, at: Date.now() };
  emit("error", { leg, message });
  emit("change");
}

function play(m) {
  const audio = document.getElementById("remote-audio");
  if (!audio || !m.remote) return;
  playing = m.leg;
  if (audio.srcObject !== m.remote) audio.srcObject = m.remote;
  audio.play().catch(() => {
    // Autoplay refused (no click on the page yet): the next click on the page starts it.
    document.addEventListener("click", () => audio.play().catch(() => {}), { once: true });
  });
}

function closePc(m) {
  if (m.pc) {
    m.pc.ontrack = null;
    m.pc.onconnectionstatechange = null;
    try {
      m.pc.close();
    } catch {
      // Already closed.
    }
  }
  m.pc = null;
}

function stopTracks(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/** Closes the leg's RTCPeerConnection and stops its microphone. */
function endMedia(leg) {
  const m = legs.get(leg);
  if (!m) return;
  m.closed = true;
  closePc(m);
  stopTracks(m.mic);
  m.mic = null;
  legs.delete(leg);
  delete state.media[leg];
  if (playing === leg) {
    playing = null;
    const audio = document.getElementById("remote-audio");
    const other = [...legs.values()].find((x) => x.pc && x.remote);
    if (other) play(other);
    else if (audio) audio.srcObject = null;
  }
}

/** The media of the call the panel shows, else of any call. */
function currentMedia() {
  const call = currentCall();
  return (call && legs.get(call.leg)) || (playing && legs.get(playing)) || [...legs.values()][0] || null;
}

/** The RTCPeerConnection of the current call, or null. */
export function currentPc() {
  const m = currentMedia();
  return (m && m.pc) || null;
}

/** The remote MediaStream of the current call, or null. */
export function currentRemoteStream() {
  const m = currentMedia();
  return (m && m.pc && m.remote) || null;
}

/** Whether this page has live media for the leg. */
export function hasMedia(leg) {
  const m = legs.get(leg);
  return !!(m && m.pc);
}
