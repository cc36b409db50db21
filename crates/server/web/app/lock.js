// The app PIN: asked before codes are shown or a login approved. Stored as a PBKDF2-SHA256
// check value; each attempt is counted before it is checked, and the tenth wrong PIN in a row
// wipes the app (docs/token-app.md says what this protects and what it does not).

import { PIN_ITERATIONS, hex, fromHex, pinHash, randomBytes, sameBytes } from "./crypto.js";
import * as store from "./store.js";
import { busy, field, h, say, show, statusLine } from "./ui.js";

export const MAX_PIN_FAILURES = 10;
const MIN_PIN = 6;
/// Lock after this long without a touch, or this long in the background.
const IDLE_MS = 5 * 60 * 1000;
const HIDDEN_MS = 60 * 1000;

let unlocked = false;
let lastActive = Date.now();
let hiddenAt = null;
let onLock = () => {};

export const isUnlocked = () => unlocked;

export function lock() {
  if (!unlocked) return;
  unlocked = false;
  onLock();
}

/// Starts the idle and background timers; `whenLocked` redraws the page.
export function watchIdle(whenLocked) {
  onLock = whenLocked;
  for (const ev of ["pointerdown", "keydown"]) {
    document.addEventListener(ev, () => (lastActive = Date.now()), { passive: true });
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) hiddenAt = Date.now();
    else if (hiddenAt && Date.now() - hiddenAt > HIDDEN_MS) lock();
    if (!document.hidden) hiddenAt = null;
  });
  setInterval(() => {
    if (unlocked && Date.now() - lastActive > IDLE_MS) lock();
  }, 10000);
}

export async function hasPin() {
  return Boolean(await store.getMeta("pin"));
}

/// First start: choose a PIN. Resolves when it is set (the app is then unlocked).
export function setPinScreen(intro) {
  return new Promise((resolve) => {
    const [f1, pin] = field("pin-new", "Choose an app PIN (at least 6 digits)", {
      type: "password", inputmode: "numeric", autocomplete: "new-password", autofocus: true,
    });
    const [f2, again] = field("pin-again", "Type it again", {
      type: "password", inputmode: "numeric", autocomplete: "new-password",
    });
    const status = statusLine("pin-status");
    const button = h("button", { id: "pin-set", class: "primary", type: "submit" }, "Set PIN");
    const form = h("form", { class: "card", onsubmit: (e) => {
      e.preventDefault();
      busy(button, async () => {
        if (!/^\d+$/.test(pin.value) || pin.value.length < MIN_PIN) {
          return say(status, `The PIN must be at least ${MIN_PIN} digits.`, "error");
        }
        if (pin.value !== again.value) return say(status, "The two PINs differ.", "error");
        const salt = randomBytes(16);
        const hash = await pinHash(pin.value, salt);
        await store.putMeta("pin", { salt: hex(salt), hash: hex(hash), iterations: PIN_ITERATIONS });
        await store.putMeta("pinFailures", 0);
        pin.value = again.value = "";
        unlocked = true;
        lastActive = Date.now();
        resolve();
      });
    } }, h("h1", {}, "Protect this app"), intro ? h("p", {}, intro) : null,
      h("p", {}, "The PIN is asked before codes are shown and before a login is approved."),
      f1, f2, button, status);
    show(form);
  });
}

/// Asks for the PIN; resolves when it is right. `waiting()` tells how many push requests wait.
export function unlockScreen(waiting = () => 0, onWiped = () => {}) {
  return new Promise((resolve) => {
    const [f, pin] = field("pin", "App PIN", {
      type: "password", inputmode: "numeric", autocomplete: "current-password", autofocus: true,
    });
    const status = statusLine("pin-status");
    const note = h("p", { id: "waiting", class: "note" });
    const refresh = () => {
      const n = waiting();
      note.textContent = n ? `${n} login request${n > 1 ? "s are" : " is"} waiting: unlock to answer.` : "";
    };
    refresh();
    const timer = setInterval(refresh, 1000);
    const button = h("button", { id: "unlock", class: "primary", type: "submit" }, "Unlock");
    const form = h("form", { class: "card", onsubmit: (e) => {
      e.preventDefault();
      busy(button, async () => {
        const stored = await store.getMeta("pin");
        const n = await store.countPinAttempt();
        const hash = await pinHash(pin.value, fromHex(stored.salt), stored.iterations);
        pin.value = "";
        if (sameBytes(hash, fromHex(stored.hash))) {
          await store.putMeta("pinFailures", 0);
          clearInterval(timer);
          unlocked = true;
          lastActive = Date.now();
          resolve();
          return;
        }
        if (n >= MAX_PIN_FAILURES) {
          clearInterval(timer);
          await store.wipe();
          onWiped();
          return;
        }
        const left = MAX_PIN_FAILURES - n;
        say(status, left <= 5
          ? `Wrong PIN. ${left} attempt${left > 1 ? "s" : ""} left before this app wipes its accounts.`
          : "Wrong PIN.", "error");
      });
    } }, h("h1", {}, "latchkey"), f, button, status, note);
    show(form);
  });
}
