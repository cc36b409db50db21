// The latchkey token app: boot, the home screen (codes, push requests, badge), the offline
// answer, adding an account and wiping. docs/token-app.md describes it for people.

import { defaultDeviceName, parseLink, register } from "./accounts.js";
import * as api from "./api.js";
import { answerChallenge, missingAlgorithms, totpCode } from "./crypto.js";
import { hasPin, isUnlocked, lock, setPinScreen, unlockScreen, watchIdle } from "./lock.js";
import * as push from "./push.js";
import { scanQr } from "./scan.js";
import * as store from "./store.js";
import { busy, field, grouped, h, hhmm, notice, say, show, statusLine } from "./ui.js";

let accounts = [];
let pendingLink = null;
let screen = "home";
let scanning = null;

const now = () => Math.floor(Date.now() / 1000);

function stopScan() {
  if (scanning) scanning.stop();
  scanning = null;
}

/// ---- home ----------------------------------------------------------------------------------

function pushCard(tx, { account, req }) {
  const [f, number] = field(`number-${tx}`, "Number shown on the login screen", {
    class: "number", inputmode: "numeric", autocomplete: "off", pattern: "[0-9]*", maxlength: 4,
  });
  const status = statusLine(`push-status-${tx}`);
  const approve = h("button", { class: "primary approve", type: "submit" }, "Approve");
  const deny = h("button", { class: "danger deny", type: "button" }, "This wasn't me");
  const from = req.rhost ? `, from ${req.rhost}` : "";
  const form = h("form", { class: "card push", "data-tx": tx, onsubmit: (e) => {
    e.preventDefault();
    busy(approve, async () => {
      if (!/^\d{1,9}$/.test(number.value.trim())) return say(status, "Type the number shown on the login screen.", "error");
      const v = await push.answer(tx, "approve", Number(number.value.trim()));
      notice(v.message || (v.ok ? "Approved." : "Refused."), v.ok ? "ok" : "error");
    });
  } },
    h("h2", {}, "Login request"),
    h("p", { class: "context" }, `${req.user} on ${req.host} (${req.client_id}${from})`),
    h("p", { class: "note" }, `Account ${account.name} · expires ${hhmm(req.expires_at)}`),
    f, h("div", { class: "row" }, approve, deny), status);
  deny.addEventListener("click", () => busy(deny, async () => {
    const v = await push.answer(tx, "deny");
    notice(v.ok ? "Denied. The login was refused and your administrator can see it." : v.message, v.ok ? "ok" : "error");
  }));
  return form;
}

function accountCard(a) {
  const code = h("output", { class: "code", "aria-label": `Code for ${a.name}` }, "······");
  const left = h("span", { class: "left" });
  const state = h("p", { class: "note account-status" });
  const status = statusLine(`badge-status-${a.id}`);
  const badge = (which) => h("button", { type: "button", class: `badge-${which}`, onclick: (e) => busy(e.currentTarget, async () => {
    const v = await push.badge(a, which);
    say(status, v.message || (v.ok ? `Badged ${which}.` : "Refused."), v.ok ? "ok" : "error");
  }) }, which === "in" ? "Badge in" : "Badge out");
  const remove = confirmed(h("button", { type: "button", class: "quiet remove" }, "Remove"),
    `Remove ${a.name}? Its keys are deleted from this app; an administrator can register it again.`,
    "Yes, remove", async () => {
      await store.deleteAccount(a.id);
      await reload();
    });
  const card = h("section", { class: `card account${a.revoked ? " revoked" : ""}`, "data-user": a.user, "data-account": a.name },
    h("h2", {}, a.name), a.revoked ? null : h("p", { class: "code-line" }, code, left), state,
    a.revoked ? null : h("div", { class: "row" }, badge("in"), badge("out")), h("div", { class: "row" }, remove), status);
  const tick = async () => {
    if (a.revoked) {
      state.textContent = "This app was revoked on the server: it can no longer answer for this account. Remove it.";
      return;
    }
    const c = await totpCode(a.totp, now());
    code.textContent = grouped(c.code);
    code.dataset.code = c.code;
    left.textContent = `${c.remaining} s`;
    const s = push.status(a.id);
    state.textContent = s === "connected" ? "Waiting for login requests." : s.startsWith("unreachable") ? `Offline (${s.slice(13)}); codes and offline answers still work.` : "";
  };
  card.tick = tick;
  return card;
}

let ticker = null;

/// A button that asks once more in place (no modal dialog: it works the same on every phone)
/// and runs `action` on the second, explicit press. Returns a wrapper holding both.
function confirmed(button, question, yes, action, yesId) {
  const box = h("div", { class: "confirm" });
  button.addEventListener("click", () => {
    box.replaceChildren(h("p", { class: "note" }, question),
      h("div", { class: "row" },
        h("button", { id: yesId, class: "danger", type: "button", onclick: (e) => busy(e.currentTarget, action) }, yes),
        h("button", { type: "button", onclick: () => box.replaceChildren(button) }, "Cancel")));
  });
  box.append(button);
  return box;
}

function home() {
  stopScan();
  screen = "home";
  const pushes = [...push.waiting].map(([tx, w]) => pushCard(tx, w));
  const cards = accounts.map(accountCard);
  const body = [
    h("h1", { class: "sr-only" }, "latchkey token"),
    ...pushes,
    ...(cards.length ? cards : [h("section", { class: "card" }, h("h2", {}, "No account yet"),
      h("p", {}, "Open the registration link your administrator gave you, or add it here."))]),
    h("div", { class: "actions" },
      h("button", { id: "go-offline", class: "primary big", onclick: offlineScreen }, "Answer an offline login"),
      h("button", { id: "go-add", onclick: addScreen }, "Add account"),
      h("button", { id: "go-settings", class: "quiet", onclick: settingsScreen }, "Settings")),
  ];
  show(body);
  clearInterval(ticker);
  const tickAll = () => cards.forEach((c) => c.tick());
  tickAll();
  ticker = setInterval(tickAll, 1000);
}

/// Redraws the current screen when push requests change (only the home screen shows them).
function render() {
  if (!isUnlocked()) return;
  if (screen === "home") {
    const focused = document.activeElement;
    // Keep what the person is typing: only redraw when the set of requests changed.
    const shown = [...document.querySelectorAll("form.push")].map((f) => f.dataset.tx).join();
    const current = [...push.waiting.keys()].join();
    if (shown !== current || !focused || !focused.closest("form.push")) home();
  }
}

/// ---- offline answer ------------------------------------------------------------------------

function offlineScreen() {
  stopScan();
  screen = "offline";
  const video = h("video", { id: "camera", playsinline: true, muted: true, "aria-label": "Camera view" });
  const status = statusLine("offline-status");
  const result = h("div", { id: "offline-result" });
  const [f, text] = field("offline-text", "Or paste the text under the QR code (LK1:…)", { autocomplete: "off", spellcheck: "false" });
  const open = async (t) => {
    try {
      const live = accounts.filter((a) => !a.revoked);
      const r = await answerChallenge(live, t, now());
      stopScan();
      video.hidden = true;
      say(status, "");
      result.replaceChildren(
        h("p", { id: "offline-context", class: "context" }, `${r.user}@${r.host}, ${r.clientId}, expires ${r.expiresHhmm}`),
        h("p", { class: "note" }, "Type this code at the login screen:"),
        h("output", { id: "offline-code", class: "code huge", "data-code": r.code }, grouped(r.code)));
      return true;
    } catch (e) {
      say(status, e.message, "error");
      return false;
    }
  };
  const openButton = h("button", { id: "offline-open", type: "submit" }, "Open");
  show(h("section", { class: "card" },
    h("h1", {}, "Answer an offline login"),
    h("p", {}, "Point the camera at the QR code on the login screen."),
    video, result,
    h("form", { onsubmit: (e) => { e.preventDefault(); busy(openButton, () => open(text.value)); } }, f, openButton),
    status,
    h("button", { id: "offline-back", class: "quiet", onclick: home }, "Back")));
  scanning = scanQr(video, (t) => t.startsWith("LK1:"));
  scanning.done.then((t) => open(t)).catch((e) => {
    if (e.message !== "scan stopped") say(status, e.message, "info");
  });
}

/// ---- adding an account ---------------------------------------------------------------------

function addScreen() {
  stopScan();
  screen = "add";
  const status = statusLine("add-status");
  const [f, link] = field("add-link", "Registration link", { type: "url", autocomplete: "off", spellcheck: "false" });
  const video = h("video", { id: "camera", playsinline: true, muted: true, "aria-label": "Camera view" });
  const go = (t) => {
    try {
      pendingLink = parseLink(t);
      registerScreen();
      return true;
    } catch (e) {
      say(status, e.message, "error");
      return false;
    }
  };
  show(h("section", { class: "card" },
    h("h1", {}, "Add account"),
    h("p", {}, "Scan the registration QR code, or paste the link."),
    video,
    h("form", { onsubmit: (e) => { e.preventDefault(); go(link.value); } }, f, h("button", { id: "add-go", type: "submit" }, "Continue")),
    status, h("button", { class: "quiet", onclick: home }, "Back")));
  scanning = scanQr(video, (t) => /\/app\/register\?/.test(t));
  scanning.done.then(go).catch((e) => {
    if (e.message !== "scan stopped") say(status, e.message, "info");
  });
}

function registerScreen() {
  stopScan();
  screen = "register";
  const link = pendingLink;
  const [f, device] = field("device-name", "Name of this device (shown to your administrator)", { value: defaultDeviceName(), maxlength: 64 });
  const status = statusLine("register-status");
  const button = h("button", { id: "register", class: "primary", type: "submit" }, "Register this app");
  show(h("form", { class: "card", onsubmit: (e) => {
    e.preventDefault();
    busy(button, async () => {
      try {
        say(status, "Registering…");
        const a = await register(link, device.value.trim() || defaultDeviceName());
        pendingLink = null;
        await reload();
        say(document.getElementById("main").appendChild(statusLine("registered")), `Registered: ${a.name}.`, "ok");
      } catch (e) {
        const refused = e instanceof api.RefusedError && [400, 401, 403, 404, 410].includes(e.status);
        say(status, refused ? `The server refused this link: ${e.message} Ask your administrator for a new one.` : e.message, "error");
      }
    });
  } }, h("h1", {}, "Register this app"),
    h("p", {}, `Server: ${link.host}`), link.pin ? h("p", { class: "note" }, `Certificate pin in the link: ${link.pin.slice(0, 23)}…`) : null,
    f, button, status, h("button", { type: "button", class: "quiet", onclick: () => { pendingLink = null; home(); } }, "Cancel")));
}

/// ---- settings ------------------------------------------------------------------------------

function settingsScreen() {
  stopScan();
  screen = "settings";
  const status = statusLine("settings-status");
  show(h("section", { class: "card" },
    h("h1", {}, "Settings"),
    h("button", { id: "lock-now", onclick: () => lock() }, "Lock now"),
    h("h2", {}, "Wipe this app"),
    h("p", {}, "Deletes every account, key and the PIN from this browser. The servers keep the registrations until an administrator revokes them."),
    confirmed(h("button", { id: "wipe", class: "danger" }, "Wipe all app data"),
      "Delete every account and key from this app?", "Yes, wipe everything", wipe, "wipe-confirm"),
    status, h("button", { class: "quiet", onclick: home }, "Back")));
}

async function wipe() {
  push.stopAll();
  stopScan();
  clearInterval(ticker);
  accounts = [];
  await store.wipe();
  show(h("section", { class: "card" }, h("h1", { id: "wiped" }, "This app's data is wiped"),
    h("p", {}, "No account, key or PIN is left in this browser."),
    h("button", { class: "primary", onclick: () => location.replace(location.pathname.replace(/register$/, "")) }, "Start again")));
}

/// ---- boot ----------------------------------------------------------------------------------

async function reload() {
  accounts = await store.accounts();
  push.startPolling(accounts);
  home();
}

async function unlocked() {
  if (pendingLink) registerScreen();
  else await reload();
}

async function locked() {
  stopScan();
  clearInterval(ticker);
  screen = "locked";
  await unlockScreen(() => push.waiting.size, wipe);
  await unlocked();
}

async function boot() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js", { scope: "./" }).catch((e) => console.warn("service worker:", e.message));
  }
  const missing = await missingAlgorithms();
  if (missing.length) {
    show(h("section", { class: "card" }, h("h1", {}, "This browser cannot hold the keys"),
      h("p", {}, `Its WebCrypto lacks ${missing.join(" and ")}. Use a current Chrome, Edge, Safari (17 or later) or Firefox (130 or later).`)));
    return;
  }
  const here = new URL(location.href);
  if (here.pathname.endsWith("/register") && here.searchParams.has("code")) {
    try {
      pendingLink = parseLink(here.href);
    } catch (e) {
      console.warn(e.message);
    }
    // The code is a credential: out of the address bar and the history at once.
    history.replaceState(null, "", here.pathname.replace(/register$/, ""));
  }
  push.onChange(render);
  watchIdle(locked);
  accounts = await store.accounts();
  push.startPolling(accounts);
  if (!(await hasPin())) {
    await setPinScreen(pendingLink ? "Set a PIN first; then this app registers with your server." : "");
    await unlocked();
  } else {
    await locked();
  }
}

boot().catch((e) => {
  console.error(e);
  show(h("section", { class: "card" }, h("h1", {}, "The app could not start"), h("p", {}, e.message)));
});
