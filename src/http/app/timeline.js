// Rendering of the customer card and of timeline items (messages, calls, notes), shared by the
// inbox and the call panel.

import { el, formatDuration, initials, timeElement, tintOf, uriUser } from "./ui.js";
import { customerLabel } from "./api.js";

const IDENTITY_KINDS = {
  phone: "Phone",
  sip_uri: "SIP",
  wa_id: "WhatsApp",
  whatsapp_bsuid: "WhatsApp",
  waha_chat_id: "WhatsApp",
  psid: "Messenger",
  igsid: "Instagram",
};

/** Why a call ended, in words; the server's reason stays visible in brackets for support. */
export function endReasonText(reason) {
  if (typeof reason !== "string" || reason === "") return "";
  const [code, ...rest] = reason.split(":");
  const detail = rest.join(":").trim();
  const words = {
    hangup: "You hung up",
    remote_hangup: "The other party hung up",
    cancelled: "The caller gave up",
    answered_elsewhere: "Answered by another agent",
    declined: "Declined",
    no_answer: "No answer",
    media_failed: "The audio connection failed",
    failed: "The call failed",
    transferred: "Transferred",
  }[code.trim()];
  if (!words) return reason;
  return detail ? `${words} (${code.trim()}: ${detail})` : `${words} (${code.trim()})`;
}

/** The avatar circle with initials (pictures would need the internet; initials do not). */
export function avatar(name, key, size = "") {
  return el("span", {
    class: `avatar ${tintOf(key ?? name)} ${size}`.trim(),
    text: initials(name),
    attrs: { "aria-hidden": "true" },
  });
}

/**
 * The customer card: name, identities (phone numbers with a Call button when `onDial` is given),
 * locale; `onOpen(id)` adds "Open timeline" (the call panel) and follows a merge.
 */
export function customerCard(customer, { onDial = null, onOpen = null, compact = false } = {}) {
  const name = customerLabel(customer);
  const identities = Array.isArray(customer.identities) ? customer.identities : [];
  const heading = el(compact ? "h3" : "h2", { class: "customer-name", text: name });
  const facts = [];
  if (customer.locale) facts.push(el("span", { class: "chip", text: customer.locale }));
  if (!compact && customer.created_at) {
    facts.push(el("span", { class: "muted" }, "Customer since ", timeElement(customer.created_at, { dateOnly: true })));
  }
  const list = el(
    "ul",
    { class: "identities", attrs: { "aria-label": "Ways to reach" } },
    identities.map((identity) => {
      const kind = IDENTITY_KINDS[identity.kind] || identity.kind;
      const value = identity.kind === "sip_uri" ? uriUser(identity.external_id) : identity.external_id;
      return el(
        "li",
        { class: "identity" },
        el("span", { class: "identity-kind", text: kind }),
        el("span", { class: "identity-value", text: value }),
        identity.display_name && identity.display_name !== name
          ? el("span", { class: "muted", text: identity.display_name })
          : null,
        onDial && identity.kind === "phone"
          ? el("button", {
              type: "button",
              class: "small",
              text: "Call",
              attrs: { "aria-label": `Call ${value}` },
              on: { click: () => onDial(identity.external_id) },
            })
          : null,
      );
    }),
  );
  return el(
    "div",
    { class: compact ? "customer compact" : "customer" },
    el("div", { class: "customer-head" }, avatar(name, customer.id, compact ? "" : "large"),
      el("div", {}, heading, facts.length ? el("p", { class: "facts" }, facts) : null)),
    customer.merged_into_id && onOpen
      ? el("p", { class: "notice" }, "This customer was merged into another. ",
          el("button", { type: "button", class: "small", text: "Open the merged customer",
            on: { click: () => onOpen(customer.merged_into_id) } }))
      : null,
    identities.length ? list : el("p", { class: "muted", text: "No phone number or channel known." }),
  );
}

function personName(userId, users, me) {
  if (userId === null || userId === undefined) return null;
  if (me && Number(me.id) === Number(userId)) return "you";
  const user = users && users.get(Number(userId));
  return user ? user.name : `agent #${userId}`;
}

/** The duration of a call item: talk time, or why there is none. */
export function callDurationText(item) {
  if (Number.isFinite(item.duration_secs)) return formatDuration(item.duration_secs);
  if (!item.ended_at) return "in progress";
  if (!item.answered_at) return "not answered";
  return "–";
}

/**
 * One timeline item as `<li class="timeline-item" data-kind data-id>`. `compact` (the call panel)
 * leaves out recording players and long texts.
 */
export function timelineItem(item, { users = null, me = null, compact = false } = {}) {
  const kind = typeof item.kind === "string" ? item.kind : "other";
  const li = el("li", {
    class: `timeline-item kind-${kind.replace(/[^a-z_]/g, "")}`,
    dataset: { kind, id: String(item.id ?? "") },
  });
  if (item.direction === "in" || item.direction === "out") li.classList.add(`dir-${item.direction}`);
  if (kind === "message") {
    const who = item.direction === "out" ? personName(item.user_id, users, me) || "the business" : "customer";
    const comment = item.message_kind === "comment";
    const attachments = Array.isArray(item.attachments) ? item.attachments : [];
    const files = attachments.length === 0 ? null : el("ul", { class: "attachments" },
      ...attachments.map((a) => {
        const label = `${a && a.type ? a.type : "file"}${a && a.filename ? ": " + a.filename : ""}`;
        // Only http(s) links: a provider's URL is data, never script.
        const url = a && typeof a.url === "string" && /^https?:\/\//.test(a.url) ? a.url : null;
        return el("li", {}, url
          ? el("a", { text: label, attrs: { href: url, target: "_blank", rel: "noopener noreferrer" } })
          : el("span", { text: label }));
      }));
    const failed = item.status === "failed" && item.error ? el("p", { class: "form-error", text: `Not delivered: ${item.error}` }) : null;
    if (comment) li.classList.add("is-comment");
    li.append(
      el("div", { class: "bubble" },
        comment ? el("p", { class: "note-label", text: "Public comment" }) : null,
        el("p", { class: "body", text: item.body ?? (attachments.length ? "" : "(no text)") }),
        files),
      el("p", { class: "meta" }, `${item.direction === "out" ? "Sent by " + who : "From the customer"} · `,
        timeElement(item.at), item.status && item.direction === "out" ? ` · ${item.status}` : ""),
    );
    // The DOM's own append writes a null as the text "null": only a real element goes in.
    if (failed) li.append(failed);
  } else if (kind === "call") {
    const incoming = item.direction !== "out";
    const number = uriUser(incoming ? item.from_uri : item.to_uri);
    const agent = personName(item.user_id, users, me);
    const recording = item.recording_id !== null && item.recording_id !== undefined && !compact
      ? el("audio", {
          class: "recording-player",
          attrs: {
            controls: "",
            preload: "metadata",
            src: `/api/v1/recordings/${encodeURIComponent(String(item.recording_id))}`,
            "aria-label": `Recording of the call ${incoming ? "from" : "to"} ${number}`,
          },
        })
      : null;
    li.append(
      el("div", { class: "call-card" },
        el("p", { class: "call-title" },
          el("span", { class: "call-icon", text: incoming ? "↙" : "↗", attrs: { "aria-hidden": "true" } }),
          el("strong", { text: incoming ? "Incoming call" : "Outgoing call" }),
          number ? el("span", { class: "call-item-number", text: number }) : null,
          el("span", { class: "call-duration", text: callDurationText(item),
            attrs: { title: "Talk time" } })),
        el("p", { class: "meta" }, timeElement(item.at),
          agent ? ` · ${agent}` : "",
          item.end_reason ? ` · ${endReasonText(item.end_reason)}` : item.status ? ` · ${item.status}` : ""),
        recording),
    );
  } else if (kind === "note") {
    const author = personName(item.user_id, users, me);
    li.append(
      el("div", { class: "note" },
        el("p", { class: "note-label", text: author ? `Note by ${author}` : "Note" }),
        el("p", { class: "body", text: item.body ?? "" })),
      el("p", { class: "meta" }, timeElement(item.at)),
    );
  } else {
    // A kind this page does not know yet: shown plainly rather than dropped.
    li.append(
      el("p", { class: "body" }, el("strong", { text: kind }), item.body ? ` ${item.body}` : ""),
      el("p", { class: "meta" }, timeElement(item.at)),
    );
  }
  return li;
}
