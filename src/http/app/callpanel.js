// The left column: connection indicator, presence, the call panel (answer, decline, hang up, mute,
// hold, keypad, transfer, timer, the caller's card and recent history) and the dialer. Rendering
// is idempotent: every change of the phone state redraws from state, nothing else.

import * as phone from "./phone.js";
import { api, getCustomer, getUsers, customerLabel } from "./api.js";
import { $, el, fill, announce, formatDuration, errorText, setText } from "./ui.js";
import { customerCard, endReasonText, timelineItem } from "./timeline.js";

const ENDED_SHOWN_MS = 5000;
const ERROR_SHOWN_MS = 8000;
const DIGIT_RE = /^[0-9*#]$/;

let me = null;
let openCustomer = () => {};
let everConnected = false;
let timerInterval = null;
let hideTimer = null;
/** leg → the hold state asked for and not yet confirmed by a `call` frame. */
const pendingHold = new Map();
/** leg → digits sent, shown under the keypad. */
const sentDigits = new Map();
/** The customer shown in the panel: {key, customer, items} or a pending marker. */
let context = { key: null };
let agentsLoadedAt = 0;
let transferNote = null;
let errorTimer = null;

/** Wires the controls once. `onOpenCustomer(id)` shows a customer's timeline in the inbox. */
export function init({ onOpenCustomer }) {
  openCustomer = onOpenCustomer;

  $("presence").addEventListener("change", (event) => {
    $("presence-error").textContent = "";
    phone.setPresence(event.target.value).catch((e) => {
      $("presence-error").textContent = `Presence not saved: ${errorText(e)}`;
    });
  });

  $("dial-form").addEventListener("submit", (event) => {
    event.preventDefault();
    dialNumber($("dial-number").value);
  });
  $("dial-number").addEventListener("input", () => showDialError(null));

  $("call-answer").addEventListener("click", () => act((leg) => phone.answer(leg)));
  $("call-decline").addEventListener("click", () => act((leg) => phone.decline(leg)));
  $("call-hangup").addEventListener("click", () => act((leg) => phone.hangup(leg)));
  $("call-mute").addEventListener("click", () => {
    const call = phone.currentCall();
    if (call) phone.setMuted(call.leg, !phone.state.muted[call.leg]);
  });
  $("call-hold").addEventListener("click", () => {
    const call = phone.currentCall();
    if (!call) return;
    const want = !holdShown(call);
    if (phone.hold(call.leg, want)) pendingHold.set(call.leg, want);
    else notConnected();
    render();
  });
  $("call-keypad").addEventListener("click", (event) => {
    const button = event.target.closest("[data-digit]");
    if (button && !button.disabled) sendDigit(button.dataset.digit);
  });
  $("call-panel").addEventListener("keydown", (event) => {
    if (!DIGIT_RE.test(event.key) || event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const call = phone.currentCall();
    if (!call || call.state !== "connected") return;
    event.preventDefault();
    sendDigit(event.key);
    const button = $("call-keypad").querySelector(`[data-digit="${CSS.escape(event.key)}"]`);
    if (button) {
      button.classList.add("pressed");
      setTimeout(() => button.classList.remove("pressed"), 150);
    }
  });
  $("transfer-target").addEventListener("focus", () => loadAgents());
  $("transfer-submit").addEventListener("click", () => {
    const call = phone.currentCall();
    const select = $("transfer-target");
    if (!call) return;
    if (!select.value) {
      transferNote = { leg: call.leg, text: "Choose an agent to transfer to.", error: true };
    } else if (phone.transfer(call.leg, select.value)) {
      const name = select.selectedOptions[0] ? select.selectedOptions[0].dataset.name : select.value;
      transferNote = { leg: call.leg, text: `Transferring to ${name}…`, error: false };
      announce(`Transferring to ${name}`);
    } else {
      notConnected();
    }
    render();
  });
  $("call-open-timeline").addEventListener("click", () => {
    const call = phone.currentCall() || phone.state.lastEnded;
    if (call && call.customer_id) openCustomer(call.customer_id);
  });
  $("call-others-list").addEventListener("click", (event) => {
    const button = event.target.closest("[data-leg]");
    if (!button) return;
    phone.state.focus = button.dataset.leg;
    render();
    $("call-panel").focus();
  });

  // Browsers give the microphone only to secure pages (HTTPS, or localhost).
  $("insecure-warning").hidden = window.isSecureContext !== false;
  phone.on("change", render);
  phone.on("call", onCallChanged);
  phone.on("ended", onCallEnded);
  phone.on("error", ({ leg, message }) => {
    if (leg) pendingHold.delete(leg);
    if (!phone.currentCall()) showDialError(message);
    announce(message);
  });
  phone.on("media", (leg, connectionState) => {
    if (connectionState === "failed") announce("The audio connection failed.");
  });
  document.addEventListener("visibilitychange", render);
}

/** After login: who the agent is (to leave them out of the transfer list). */
export function activate(user) {
  me = user;
  everConnected = false;
  render();
}

/** After logout: forget everything shown. */
export function reset() {
  me = null;
  pendingHold.clear();
  sentDigits.clear();
  context = { key: null };
  agentsLoadedAt = 0;
  transferNote = null;
  showDialError(null);
  fill($("transfer-target"));
  clearInterval(timerInterval);
  timerInterval = null;
  render();
}

/** Dials a number (the dialer, or a Call button on a customer card). */
export function dialNumber(raw) {
  const number = String(raw || "").trim();
  if (!number) {
    showDialError("Type a number or an extension.");
    $("dial-number").focus();
    return;
  }
  if (!phone.dial(number)) {
    notConnected();
    return;
  }
  showDialError(null);
  $("dial-number").value = "";
  announce(`Calling ${number}`);
}

function act(command) {
  const call = phone.currentCall();
  if (!call) return;
  if (!command(call.leg)) notConnected();
}

function notConnected() {
  const text = "Not connected to the server. It reconnects by itself; try again in a moment.";
  if (phone.currentCall()) {
    phone.state.lastError = { leg: null, message: text, at: Date.now() };
    render();
  } else {
    showDialError(text);
  }
}

function showDialError(text) {
  $("dial-error").textContent = text || "";
}

function sendDigit(digit) {
  const call = phone.currentCall();
  if (!call || call.state !== "connected") return;
  if (!phone.dtmf(call.leg, digit)) {
    notConnected();
    return;
  }
  sentDigits.set(call.leg, ((sentDigits.get(call.leg) || "") + digit).slice(-24));
  setText($("call-digits"), sentDigits.get(call.leg));
}

function holdShown(call) {
  return pendingHold.has(call.leg) ? pendingHold.get(call.leg) : call.held;
}

function onCallChanged(call, previous) {
  pendingHold.delete(call.leg);
  if (!previous) {
    if (call.direction === "in" && call.state === "ringing") {
      announce(`Incoming call from ${call.name || call.number || "an unknown number"}`);
    }
  } else if (previous.state !== call.state) {
    if (call.state === "connected") {
      announce("Call connected");
      loadAgents();
    } else if (call.state === "ringing" && call.direction === "out") {
      announce("Ringing");
    }
  }
  if (transferNote && transferNote.leg === call.leg && transferNote.error) transferNote = null;
}

function onCallEnded(call) {
  pendingHold.delete(call.leg);
  sentDigits.delete(call.leg);
  if (transferNote && transferNote.leg === call.leg) transferNote = null;
  announce(`Call ended. ${endReasonText(call.reason) || ""}`);
  clearTimeout(hideTimer);
  hideTimer = setTimeout(render, ENDED_SHOWN_MS + 50);
}

/** The call the panel shows: the current one, or the one that just ended. */
function shownCall() {
  const call = phone.currentCall();
  if (call) return call;
  const ended = phone.state.lastEnded;
  if (ended && Date.now() - ended.ended_local_at < ENDED_SHOWN_MS) return ended;
  return null;
}

function stateText(call, owned, otherTab) {
  if (call.state === "ended") return "Call ended";
  if (otherTab) return call.state === "ringing" ? "Ringing" : "On the call in another tab";
  switch (call.state) {
    case "ringing":
      return call.direction === "in" ? "Ringing…" : "Ringing at the other end…";
    case "connecting":
      return owned ? "Connecting the audio…" : "Connecting…";
    case "connected":
      return call.held ? "Connected · on hold" : "Connected";
    default:
      return call.state;
  }
}

function mediaText(call) {
  const status = phone.state.media[call.leg];
  if (!status || call.state === "ended") return "";
  if (status === "failed") return "The audio connection failed.";
  if (status === "disconnected") return "Audio interrupted; recovering…";
  if (status === "connected") return "";
  return call.state === "connected" ? "" : `Audio: ${status}`;
}

function render() {
  try {
    renderStatus();
    renderPresence();
    renderPanel();
    renderTitle();
  } catch (e) {
    console.error("masterz: rendering the phone failed", e);
  }
}

function renderStatus() {
  const status = $("ws-status");
  const connected = phone.state.connection === "connected";
  if (connected) everConnected = true;
  status.dataset.state = connected ? "connected" : "reconnecting";
  setText($("ws-status-text"), connected ? "Connected" : everConnected ? "Reconnecting…" : "Connecting…");
  status.title = connected
    ? "Calls and presence are live."
    : "The connection for calls and presence is down; it comes back by itself. Calls in progress go on.";
}

function renderPresence() {
  const select = $("presence");
  const chosen = phone.state.chosenPresence === "away" ? "away" : "available";
  if (select.value !== chosen) select.value = chosen;
  const now = phone.state.presence || chosen;
  const label = $("presence-status");
  setText(label, now === "on_call" ? "on call" : now);
  label.dataset.status = now;
}

function renderTitle() {
  const ringing = phone.state.calls.some((c) => c.direction === "in" && c.state === "ringing" && !c.tab);
  const title = ringing ? "Incoming call · masterz" : "masterz";
  if (document.title !== title) document.title = title;
}

function renderPanel() {
  const panel = $("call-panel");
  const call = shownCall();
  if (!call) {
    panel.hidden = true;
    panel.dataset.state = "";
    panel.dataset.leg = "";
    clearInterval(timerInterval);
    timerInterval = null;
    // The next call, even from the same customer, shows their history afresh.
    context = { key: null };
    return;
  }
  const owned = phone.ownsCall(call);
  const otherTab = !!call.tab && !owned;
  const ended = call.state === "ended";
  const incomingRinging = call.direction === "in" && call.state === "ringing" && !call.tab;
  const live = call.state === "connecting" || call.state === "connected";

  panel.hidden = false;
  panel.dataset.state = call.state;
  panel.dataset.leg = call.leg;
  panel.classList.toggle("ringing", incomingRinging);

  setText($("call-heading"), call.direction === "out" ? "Outgoing call" : "Incoming call");
  setText($("call-state"), stateText(call, owned, otherTab));
  const known = context.key === contextKey(call) && context.customer ? customerLabel(context.customer) : null;
  setText($("call-name"), call.name || known || (call.direction === "out" ? "" : "Unknown caller"));
  setText($("call-number"), call.number || "");

  // What went wrong: the end reason, else a recent error about this call (or about no call).
  const error = phone.state.lastError;
  let problem = "";
  if (ended) problem = endReasonText(call.reason) || "Ended";
  else if (error && (error.leg === null || error.leg === call.leg) && Date.now() - error.at < ERROR_SHOWN_MS) {
    problem = error.message;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(render, ERROR_SHOWN_MS - (Date.now() - error.at) + 50);
  }
  setText($("call-error"), problem);
  $("call-error").classList.toggle("ended", ended);
  const note = transferNote && transferNote.leg === call.leg ? transferNote : null;
  setText($("call-media"), ended ? "" : note ? note.text : mediaText(call));

  $("call-answer").hidden = !incomingRinging;
  $("call-decline").hidden = !incomingRinging;
  $("call-hangup").hidden = ended || (call.direction === "in" && call.state === "ringing");

  const controls = $("call-controls");
  controls.hidden = !live;
  const connected = call.state === "connected";
  const mute = $("call-mute");
  mute.disabled = !phone.hasMedia(call.leg);
  mute.setAttribute("aria-pressed", phone.state.muted[call.leg] ? "true" : "false");
  const hold = $("call-hold");
  hold.disabled = !connected;
  hold.setAttribute("aria-pressed", holdShown(call) ? "true" : "false");
  for (const button of $("call-keypad").querySelectorAll("button")) button.disabled = !connected;
  setText($("call-digits"), sentDigits.get(call.leg) || "");
  $("transfer-target").disabled = !connected;
  $("transfer-submit").disabled = !connected;

  renderTimer(call);
  renderContext(call);
  renderOthers(call);
}

function renderTimer(call) {
  const timer = $("call-timer");
  const tick = () => {
    const start = phone.talkStartOf(phone.currentCall());
    setText(timer, start ? formatDuration((Date.now() - start) / 1000) : "0:00");
  };
  if (call.state === "ended") {
    // The talk time of the call that just ended stays, frozen.
    clearInterval(timerInterval);
    timerInterval = null;
    return;
  }
  if (call.state === "connected" && !timerInterval) timerInterval = setInterval(tick, 1000);
  if (call.state !== "connected") {
    clearInterval(timerInterval);
    timerInterval = null;
  }
  tick();
}

function renderOthers(shown) {
  const others = phone.state.calls.filter((c) => c.leg !== shown.leg);
  $("call-others").hidden = others.length === 0;
  fill(
    $("call-others-list"),
    others.map((c) =>
      el("li", {},
        el("button", { type: "button", class: "small", dataset: { leg: c.leg },
          text: `${c.name || c.number || "Unknown"} · ${c.state}${c.tab && c.tab !== phone.state.tab ? " (another tab)" : ""}` }),
      ),
    ),
  );
}

function contextKey(call) {
  return call.customer_id ? `customer:${call.customer_id}` : `leg:${call.leg}`;
}

/** The caller's card and last five timeline items, fetched once per call and customer. */
function renderContext(call) {
  const key = contextKey(call);
  const button = $("call-open-timeline");
  button.hidden = !call.customer_id;
  if (context.key === key) return;
  context = { key };
  const card = $("call-customer");
  const list = $("call-timeline");
  fill(list);
  if (!call.customer_id) {
    fill(card, el("p", { class: "muted", text: "Not a known customer." }));
    return;
  }
  fill(card, el("p", { class: "muted", text: "Loading the customer…" }));
  const mine = context;
  Promise.all([
    getCustomer(call.customer_id),
    api.get(`/customers/${encodeURIComponent(call.customer_id)}/timeline?limit=5`),
    getUsers(),
  ])
    .then(([customer, page, users]) => {
      if (context !== mine) return;
      mine.customer = customer;
      fill(card, customerCard(customer, { compact: true }));
      const items = (page && Array.isArray(page.items) ? page.items : []).slice(0, 5).reverse();
      fill(list, items.length
        ? items.map((item) => timelineItem(item, { users, me, compact: true }))
        : el("li", { class: "muted", text: "No history yet." }));
      const current = phone.currentCall();
      if (current && !current.name) setText($("call-name"), customerLabel(customer));
    })
    .catch((e) => {
      if (context !== mine) return;
      fill(card, el("p", { class: "form-error", text: `Customer not loaded: ${errorText(e)}` }));
    });
}

/** Fills the transfer list from GET /agents (everyone but oneself), at most every 5 s. */
async function loadAgents() {
  if (Date.now() - agentsLoadedAt < 5000) return;
  agentsLoadedAt = Date.now();
  const select = $("transfer-target");
  let agents;
  try {
    agents = await api.get("/agents");
  } catch (e) {
    agentsLoadedAt = 0;
    if (select.options.length === 0) {
      fill(select, el("option", { value: "", text: "Agents not available" }));
    }
    return;
  }
  const myId = me && me.id;
  const previous = select.value;
  const options = (Array.isArray(agents) ? agents : [])
    .filter((a) => a && a.id !== undefined && Number(a.id) !== Number(myId))
    .map((a) => {
      const presence = a.presence === "on_call" ? "on call" : a.presence || "";
      const name = a.name || a.email || `agent #${a.id}`;
      return el("option", {
        value: String(a.id),
        text: `${name}${a.extension ? ` (${a.extension})` : ""}${presence ? ` · ${presence}` : ""}`,
        dataset: { name },
      });
    });
  fill(select, el("option", { value: "", text: options.length ? "Choose an agent…" : "No other agents" }), options);
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

export { render };
