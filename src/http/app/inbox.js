// The middle and right columns: the conversation list with its filters, the selected customer's
// card and timeline (newest at the bottom, older pages on demand), and the reply box: a reply to
// the customer on the conversation's channel (Messenger, Instagram, WhatsApp, WAHA), or a note.

import { api, query, getCustomer, getUsers, customerLabel } from "./api.js";
import { $, el, fill, announce, errorText, timeElement } from "./ui.js";
import { avatar, customerCard, timelineItem } from "./timeline.js";

// Every filter is one the server supports (GET /conversations): nothing is filtered here.
const FILTERS = {
  open: { status: "open" },
  mine: { assignee: "me" },
  unassigned: { unassigned: true },
};
const FILTER_NAMES = { open: "open", mine: "assigned to you", unassigned: "unassigned" };
const PAGE = 50;
const TIMELINE_PAGE = 50;
const REFRESH_MS = 30_000;

let me = null;
let dial = () => {};
let filter = "open";
let listCursor = null;
let listToken = 0;
let refreshTimer = null;
/** What the right column shows: {customerId, conversationId, cursor, token}. */
let view = null;
let viewToken = 0;
/** Wires the controls once. `onDial(number)` calls a customer's number. */
export function init({ onDial }) {
  dial = onDial;
  for (const name of Object.keys(FILTERS)) {
    $(`filter-${name}`).addEventListener("click", () => setFilter(name));
  }
  $("conversations-refresh").addEventListener("click", () => loadConversations());
  $("conversations-more").addEventListener("click", () => loadConversations({ more: true }));
  $("conversations").addEventListener("click", (event) => {
    const item = event.target.closest(".conversation");
    if (item && item.conversation) selectConversation(item.conversation);
  });
  $("timeline-older").addEventListener("click", () => loadTimeline({ older: true }));
  $("reply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitReply();
  });
  $("reply-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submitReply();
    }
  });
  $("reply-as-note").addEventListener("change", () => showReplyMode());
  $("suggestion-use").addEventListener("click", () => useSuggestion());
  $("suggestion-dismiss").addEventListener("click", () => dismissSuggestion());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && me) loadConversations({ quiet: true });
  });
}

/** After login. */
export function activate(user) {
  me = user;
  setFilter(filter);
  clearInterval(refreshTimer);
  // Until new messages arrive over the socket, the list refreshes itself now and then.
  refreshTimer = setInterval(() => {
    if (document.visibilityState === "visible") loadConversations({ quiet: true });
  }, REFRESH_MS);
}

/** After logout. */
export function reset() {
  me = null;
  clearInterval(refreshTimer);
  refreshTimer = null;
  listToken += 1;
  viewToken += 1;
  view = null;
  listCursor = null;
  fill($("conversations"));
  $("conversations-status").textContent = "";
  $("conversations-more").hidden = true;
  showEmptyCustomer();
}

function setFilter(name) {
  filter = name;
  for (const key of Object.keys(FILTERS)) {
    $(`filter-${key}`).setAttribute("aria-pressed", key === name ? "true" : "false");
  }
  loadConversations();
}

/** Loads the first page of the list (or the next one with `more`); `quiet` keeps the list shown. */
async function loadConversations({ more = false, quiet = false } = {}) {
  if (!me) return;
  const token = ++listToken;
  const status = $("conversations-status");
  if (!quiet && !more) status.textContent = "Loading…";
  let page;
  try {
    page = await api.get(`/conversations${query({
      ...FILTERS[filter],
      limit: PAGE,
      cursor: more ? listCursor : null,
    })}`);
  } catch (e) {
    if (token !== listToken) return;
    status.textContent = e.status === 403
      ? "Your role may not see conversations."
      : `Conversations not loaded: ${errorText(e)}`;
    return;
  }
  if (token !== listToken) return;
  const items = page && Array.isArray(page.items) ? page.items : [];
  listCursor = page && page.next_cursor ? page.next_cursor : null;
  $("conversations-more").hidden = !listCursor;
  const list = $("conversations");
  const focusedId = document.activeElement && list.contains(document.activeElement)
    ? document.activeElement.closest(".conversation")?.dataset.id
    : null;
  const rows = items.map(conversationRow);
  if (more) list.append(...rows);
  else fill(list, rows);
  const count = list.children.length;
  status.textContent = count === 0
    ? `No ${FILTER_NAMES[filter]} conversations.`
    : `${count}${listCursor ? "+" : ""} ${FILTER_NAMES[filter]} conversation${count === 1 ? "" : "s"}`;
  if (focusedId) list.querySelector(`.conversation[data-id="${CSS.escape(focusedId)}"] button`)?.focus();
}

function conversationRow(conversation) {
  const selected = view && view.conversationId === conversation.id;
  const name = el("span", { class: "conv-name", text: `Customer #${conversation.customer_id}` });
  const badge = avatar("", conversation.customer_id);
  getCustomer(conversation.customer_id)
    .then((customer) => {
      const label = customerLabel(customer);
      name.textContent = label;
      badge.replaceWith(avatar(label, conversation.customer_id));
    })
    .catch(() => {});
  const assignee = conversation.assignee_id === null || conversation.assignee_id === undefined
    ? el("span", { class: "chip muted", text: "unassigned" })
    : me && Number(conversation.assignee_id) === Number(me.id)
      ? el("span", { class: "chip mine", text: "you" })
      : assigneeChip(conversation.assignee_id);
  const li = el(
    "li",
    { class: "conversation", dataset: { id: String(conversation.id), status: conversation.status || "" } },
    el("button", { type: "button", class: "conversation-button", attrs: { "aria-current": selected ? "true" : "false" } },
      badge,
      el("span", { class: "conv-main" },
        el("span", { class: "conv-top" }, name, timeElement(conversation.last_activity_at)),
        el("span", { class: "conv-subject", text: conversation.subject || "No subject" }),
        el("span", { class: "conv-tags" },
          el("span", { class: `chip status-${String(conversation.status || "").replace(/[^a-z]/g, "")}`, text: conversation.status || "" }),
          assignee))),
  );
  li.conversation = conversation;
  return li;
}

function assigneeChip(userId) {
  const chip = el("span", { class: "chip", text: `agent #${userId}` });
  getUsers().then((users) => {
    const user = users.get(Number(userId));
    if (user) chip.textContent = user.name;
  });
  return chip;
}

function selectConversation(conversation) {
  for (const button of $("conversations").querySelectorAll(".conversation-button")) {
    const id = button.closest(".conversation").dataset.id;
    button.setAttribute("aria-current", id === String(conversation.id) ? "true" : "false");
  }
  openCustomer(conversation.customer_id, { conversationId: conversation.id });
}

/** Shows a customer's card and timeline (a conversation's, or the caller's from the call panel). */
export function openCustomer(customerId, { conversationId = null } = {}) {
  if (!me || customerId === null || customerId === undefined) return;
  if (conversationId === null) {
    for (const button of $("conversations").querySelectorAll(".conversation-button")) {
      button.setAttribute("aria-current", "false");
    }
  }
  const token = ++viewToken;
  view = { customerId, conversationId, cursor: null, token, conversation: null, suggestion: null, using: null };
  $("suggestion").hidden = true;
  showReplyMode();
  if (conversationId !== null) loadConversationDetails(view);
  fill($("customer-card"), el("p", { class: "muted", text: "Loading the customer…" }));
  fill($("timeline"));
  $("reply-text").disabled = false;
  $("reply-send").disabled = false;
  $("reply-error").textContent = "";
  getCustomer(customerId, { fresh: true })
    .then((customer) => {
      if (token !== viewToken) return;
      fill($("customer-card"), customerCard(customer, { onDial: dial, onOpen: (id) => openCustomer(id) }));
    })
    .catch((e) => {
      if (token !== viewToken) return;
      fill($("customer-card"), el("p", { class: "form-error", text: `Customer not loaded: ${errorText(e)}` }));
    });
  loadTimeline();
}

/** Reloads the timeline if it shows this customer (after a call of theirs ended). */
export function refreshCustomer(customerId) {
  if (view && customerId !== null && Number(view.customerId) === Number(customerId)) loadTimeline();
}

function showEmptyCustomer() {
  fill($("customer-card"), el("p", { class: "muted", text: "Select a conversation to see the customer and their history." }));
  fill($("timeline"));
  $("timeline-older").hidden = true;
  $("timeline-status").textContent = "";
  $("reply-text").value = "";
  $("reply-text").disabled = true;
  $("reply-send").disabled = true;
  $("reply-channel").hidden = true;
  $("reply-note-wrap").hidden = true;
  $("suggestion").hidden = true;
}

const CHANNEL_NAMES = { messenger: "Messenger", instagram: "Instagram", whatsapp_cloud: "WhatsApp", waha: "WhatsApp (WAHA)" };

/** The conversation's channel and reply window; marks the customer's messages read there. */
async function loadConversationDetails(current) {
  try {
    const conversation = await api.get(`/conversations/${encodeURIComponent(current.conversationId)}`);
    if (current.token !== viewToken) return;
    current.conversation = conversation;
    showReplyMode();
    if (conversation.channel) loadSuggestion(current);
    if (conversation.channel && conversation.channel.status === "connected") {
      api.post(`/conversations/${encodeURIComponent(current.conversationId)}/read`, {}).catch(() => {});
    }
  } catch (e) {
    // Without the details the box stays a note box.
  }
}

/** Whether the box sends to the customer (a messaging channel and not ticked as a note). */
function replying() {
  return Boolean(view && view.conversation && view.conversation.channel) && !$("reply-as-note").checked;
}

/** Label, hint, button and the channel line for what the box will do. */
function showReplyMode() {
  const channel = view && view.conversation ? view.conversation.channel : null;
  const line = $("reply-channel");
  $("reply-note-wrap").hidden = !channel;
  if (!channel) {
    line.hidden = true;
  } else {
    const name = CHANNEL_NAMES[channel.kind] || channel.kind;
    let text = `${name} · ${channel.name}`;
    const w = view.conversation.reply_window;
    if (channel.status !== "connected") {
      text += ` — ${channel.status === "needs_reconnection" ? "needs reconnection" : "disconnected"}: ${channel.status_reason || "an admin must update the channel"}`;
    } else if (w && w.expires_at && !w.open) {
      text += " — the reply window is closed (24 hours after the customer's last message)";
    } else if (w && w.expires_at) {
      text += ` — reply window open until ${new Date(w.expires_at).toLocaleString()}`;
    }
    line.textContent = text;
    line.classList.toggle("warning", channel.status !== "connected" || Boolean(w && w.expires_at && !w.open));
    line.hidden = false;
  }
  const reply = replying();
  $("reply-label").textContent = reply ? "Reply to the customer" : "Add note";
  $("reply-send").textContent = reply ? "Send" : "Add note";
  $("reply-hint").textContent = reply
    ? "Sent on the customer's channel; its status (sent, delivered, read, failed) shows in the timeline. Ctrl+Enter sends."
    : "Internal note, visible to your team only. Ctrl+Enter adds it.";
}

/** A message was added or changed: refresh the timeline it belongs to and the list. */
let messageRefresh = null;
export function onMessage(message) {
  if (!me || !message) return;
  clearTimeout(messageRefresh);
  messageRefresh = setTimeout(() => {
    if (view && Number(view.customerId) === Number(message.customer_id)) loadTimeline();
    loadConversations({ quiet: true });
  }, 150);
}

/** A channel's status changed (e.g. it needs reconnection). */
export function onChannel(account) {
  if (!view || !view.conversation || !view.conversation.channel || !account) return;
  if (Number(view.conversation.channel.id) !== Number(account.id)) return;
  view.conversation.channel.status = account.status;
  view.conversation.channel.status_reason = account.status_reason;
  showReplyMode();
}

/** The conversation's newest AI suggestion, shown when it is ready to use. */
async function loadSuggestion(current) {
  try {
    const list = await api.get(`/conversations/${encodeURIComponent(current.conversationId)}/suggestions`);
    if (current.token !== viewToken) return;
    showSuggestion(Array.isArray(list) ? list[0] : null);
  } catch (e) {
    // No suggestions for this agent or conversation: the box works without them.
  }
}

function showSuggestion(suggestion) {
  if (!view) return;
  const ready = Boolean(suggestion && suggestion.state === "ready" && suggestion.text);
  view.suggestion = ready ? suggestion : null;
  $("suggestion-text").textContent = ready ? suggestion.text : "";
  $("suggestion").hidden = !ready;
}

/** A suggestion was made or used: show it if it belongs to the open conversation. */
export function onSuggestion(suggestion) {
  if (!view || !suggestion || Number(view.conversationId) !== Number(suggestion.conversation_id)) return;
  if (suggestion.state === "ready" || (view.suggestion && view.suggestion.id === suggestion.id)) {
    showSuggestion(suggestion);
  }
  if (suggestion.state === "sent") loadTimeline();
}

/** Puts the suggestion in the box to edit; sending it accepts the suggestion. */
function useSuggestion() {
  if (!view || !view.suggestion) return;
  $("reply-as-note").checked = false;
  showReplyMode();
  view.using = view.suggestion.id;
  const text = $("reply-text");
  text.value = view.suggestion.text;
  text.focus();
}

async function dismissSuggestion() {
  if (!view || !view.suggestion) return;
  const id = view.suggestion.id;
  try {
    await api.post(`/suggestions/${encodeURIComponent(id)}/dismiss`, {});
    if (view && view.using === id) view.using = null;
    showSuggestion(null);
    announce("Suggestion dismissed");
  } catch (e) {
    $("reply-error").textContent = `Suggestion not dismissed: ${errorText(e)}`;
  }
}

/** Sends the box's text as a reply on the channel or as a note, whichever the box is set to. */
async function submitReply() {
  if (!view) return;
  const current = view;
  const reply = replying();
  const text = $("reply-text");
  const send = $("reply-send");
  const error = $("reply-error");
  const body = text.value.trim();
  error.textContent = "";
  if (!body) {
    error.textContent = reply ? "Write the reply first." : "Write the note first.";
    text.focus();
    return;
  }
  send.disabled = true;
  try {
    if (reply && current.using !== null && current.using !== undefined) {
      // The agent's (possibly edited) version of a suggestion: sent, and the suggestion used.
      await api.post(`/suggestions/${encodeURIComponent(current.using)}/accept`, { text: body });
      current.using = null;
      showSuggestion(null);
    } else if (reply) {
      await api.post(`/conversations/${encodeURIComponent(current.conversationId)}/messages`, { text: body });
    } else {
      await api.post(`/customers/${encodeURIComponent(current.customerId)}/notes`, {
        body,
        conversation_id: current.conversationId ?? undefined,
      });
    }
    text.value = "";
    announce(reply ? "Reply queued" : "Note added");
    await loadTimeline();
  } catch (e) {
    error.textContent = `${reply ? "Reply not sent" : "Note not added"}: ${errorText(e)}`;
  } finally {
    send.disabled = !view;
    text.focus();
  }
}

/** The newest page of the timeline, or with `older` the page before the oldest shown. */
async function loadTimeline({ older = false } = {}) {
  if (!view) return;
  const current = view;
  const token = current.token;
  const status = $("timeline-status");
  const list = $("timeline");
  if (!older) status.textContent = "Loading the timeline…";
  let page;
  let users;
  try {
    [page, users] = await Promise.all([
      api.get(`/customers/${encodeURIComponent(current.customerId)}/timeline${query({
        limit: TIMELINE_PAGE,
        cursor: older ? current.cursor : null,
      })}`),
      getUsers(),
    ]);
  } catch (e) {
    if (token !== viewToken) return;
    status.textContent = `Timeline not loaded: ${errorText(e)}`;
    return;
  }
  if (token !== viewToken) return;
  current.cursor = page && page.next_cursor ? page.next_cursor : null;
  $("timeline-older").hidden = !current.cursor;
  // The API answers newest first; the page shows the newest at the bottom, like a chat.
  const items = (page && Array.isArray(page.items) ? page.items : []).slice().reverse();
  const rows = items.map((item) => timelineItem(item, { users, me }));
  if (older) {
    // The scroller is anchored at its bottom (column-reverse): what the agent sees stays put.
    list.prepend(...rows);
  } else {
    fill(list, rows);
    // 0 is the bottom of a column-reverse scroller: the newest entry.
    list.closest(".timeline-scroll").scrollTop = 0;
  }
  status.textContent = list.children.length === 0 ? "Nothing in the timeline yet." : "";
}

