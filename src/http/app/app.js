// The agent web app: login, then the phone (phone.js, callpanel.js) and the inbox (inbox.js).

import { api, clearCaches, onUnauthorized } from "./api.js";
import * as phone from "./phone.js";
import * as callPanel from "./callpanel.js";
import * as inbox from "./inbox.js";
import { $, errorText } from "./ui.js";

// For the end-to-end tests and for debugging from the console.
window.masterz = {
  get socket() {
    return phone.currentSocket();
  },
  get pc() {
    return phone.currentPc();
  },
  get remoteStream() {
    return phone.currentRemoteStream();
  },
  state: phone.state,
};

let me = null;
let retryCountdown = null;

function showLogin(message = "") {
  me = null;
  $("booting").hidden = true;
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("login-submit").disabled = retryCountdown !== null;
  $("login-email").focus();
}

function showApp(who) {
  me = who;
  const user = who && who.user ? who.user : {};
  const company = who && who.company ? who.company : {};
  document.documentElement.dataset.theme = company.theme === "dark" ? "dark" : "light";
  $("company-name").textContent = company.name || "";
  $("me-name").textContent = user.name || user.email || "";
  $("booting").hidden = true;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  callPanel.activate(user);
  inbox.activate(user);
  phone.start().catch((e) => console.error("masterz: the phone did not start", e));
}

/** Leaves the app: the socket closes, the media stops, nothing of the session stays on screen. */
function leaveApp() {
  phone.stop();
  inbox.reset();
  callPanel.reset();
  clearCaches();
  delete document.documentElement.dataset.theme;
  $("company-name").textContent = "";
  $("me-name").textContent = "";
}

async function login(event) {
  event.preventDefault();
  const email = $("login-email").value.trim();
  const password = $("login-password").value;
  const error = $("login-error");
  error.textContent = "";
  if (!email || !password) {
    error.textContent = "Enter your email and password.";
    (email ? $("login-password") : $("login-email")).focus();
    return;
  }
  const submit = $("login-submit");
  submit.disabled = true;
  submit.setAttribute("aria-busy", "true");
  try {
    const who = await api.post("/auth/login", { email, password }, { quiet401: true });
    $("login-password").value = "";
    showApp(who);
  } catch (e) {
    if (e.status === 401) {
      error.textContent = "Wrong email or password.";
      $("login-password").select();
    } else if (e.status === 429) {
      rateLimited(e.retryAfter);
      return;
    } else if (e.status === 422) {
      error.textContent = "That is not an email address.";
      $("login-email").focus();
    } else {
      error.textContent = errorText(e);
    }
  } finally {
    submit.removeAttribute("aria-busy");
    if (retryCountdown === null) submit.disabled = false;
  }
}

/** After a 429: the form stays locked for Retry-After seconds, counting down. */
function rateLimited(retryAfter) {
  let left = Number.isFinite(retryAfter) && retryAfter > 0 ? Math.ceil(retryAfter) : 60;
  const error = $("login-error");
  const submit = $("login-submit");
  const say = () => {
    error.textContent = `Too many login attempts. Try again in ${left} s.`;
  };
  clearInterval(retryCountdown);
  submit.disabled = true;
  say();
  retryCountdown = setInterval(() => {
    left -= 1;
    if (left > 0) {
      say();
      return;
    }
    clearInterval(retryCountdown);
    retryCountdown = null;
    submit.disabled = false;
    error.textContent = "You can try again now.";
  }, 1000);
}

async function logout() {
  $("logout").disabled = true;
  try {
    await api.post("/auth/logout", undefined, { quiet401: true });
  } catch (e) {
    // The session is forgotten here in any case; the cookie expires on its own.
    console.warn("masterz: logout request failed", e);
  } finally {
    $("logout").disabled = false;
  }
  leaveApp();
  showLogin();
}

async function boot() {
  callPanel.init({ onOpenCustomer: (id) => inbox.openCustomer(id) });
  inbox.init({ onDial: (number) => callPanel.dialNumber(number) });
  phone.on("ended", (call) => {
    // The call's row (and recording) lands in the timeline as it ends.
    if (call.customer_id) setTimeout(() => inbox.refreshCustomer(call.customer_id), 1500);
  });
  phone.on("message", (message) => inbox.onMessage(message));
  phone.on("channel", (account) => inbox.onChannel(account));
  phone.on("suggestion", (suggestion) => inbox.onSuggestion(suggestion));
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  onUnauthorized(() => {
    if (!me) return;
    leaveApp();
    showLogin("Your session has ended. Log in again.");
  });

  try {
    showApp(await api.get("/auth/me", { quiet401: true }));
  } catch (e) {
    showLogin(e.status === 401 ? "" : errorText(e));
  }
}

boot();
