// Push requests: one long poll per account (as `latchkey-token watch`), and the signed answer.
// The app never learns the number on the login screen; the server compares what the person
// typed, so approving without looking fails.

import * as api from "./api.js";
import { badgeSigningBytes, pushSigningBytes, sign } from "./crypto.js";
import { markRevoked } from "./accounts.js";

/// Requests waiting for an answer: tx → {account, req}.
export const waiting = new Map();
const answered = new Set();
const pollers = new Map();
let changed = () => {};

export function onChange(fn) {
  changed = fn;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Keeps one long poll running for each account that is not revoked.
export function startPolling(accounts) {
  for (const a of accounts) {
    if (!a.revoked && !pollers.has(a.id)) {
      const state = { account: a, stop: false, status: "connecting" };
      pollers.set(a.id, state);
      poll(state);
    }
  }
  for (const [id, state] of pollers) {
    if (!accounts.some((a) => a.id === id)) {
      state.stop = true;
      pollers.delete(id);
    }
  }
}

export function stopAll() {
  for (const s of pollers.values()) s.stop = true;
  pollers.clear();
  waiting.clear();
}

/// What each account's connection is doing: "connected", "unreachable: …", "revoked".
export function status(accountId) {
  const s = pollers.get(accountId);
  return s ? s.status : "";
}

async function poll(state) {
  let backoff = 2000;
  while (!state.stop) {
    try {
      const reqs = await api.pending(state.account);
      if (state.stop) return;
      state.status = "connected";
      backoff = 2000;
      let fresh = false;
      const now = Date.now() / 1000;
      for (const req of Array.isArray(reqs) ? reqs : []) {
        if (answered.has(req.tx) || waiting.has(req.tx) || req.expires_at < now) continue;
        waiting.set(req.tx, { account: state.account, req });
        fresh = true;
      }
      expire();
      changed();
      // A request still waiting comes back at once on the next poll: give the person time.
      if (!fresh && Array.isArray(reqs) && reqs.length) await sleep(2000);
    } catch (e) {
      if (state.stop) return;
      if (e instanceof api.RevokedError) {
        state.status = "revoked";
        state.stop = true;
        await markRevoked(state.account);
        for (const [tx, w] of waiting) if (w.account.id === state.account.id) waiting.delete(tx);
        changed();
        return;
      }
      state.status = `unreachable: ${e.message}`;
      changed();
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 30000);
    }
  }
}

function expire() {
  const now = Date.now() / 1000;
  for (const [tx, w] of waiting) if (w.req.expires_at < now) waiting.delete(tx);
}

/// Sends the signed answer to one request; resolves with the server's verdict
/// `{ok, message}`.
export async function answer(tx, decision, number) {
  const w = waiting.get(tx);
  if (!w) return { ok: false, message: "This request is no longer waiting." };
  const { account, req } = w;
  const n = decision === "approve" ? number : null;
  const signature = await sign(account.edKey, pushSigningBytes(req.tx, decision, n, req.nonce));
  const body = { tx: req.tx, decision, nonce: req.nonce, signature };
  if (decision === "approve") body.number = number;
  else body.reason = "this wasn't me";
  try {
    const verdict = await api.respond(account, body);
    answered.add(tx);
    waiting.delete(tx);
    changed();
    return verdict;
  } catch (e) {
    if (e instanceof api.RevokedError) {
      await markRevoked(account);
      waiting.delete(tx);
      changed();
      return { ok: false, message: "This app was revoked on the server: remove the account." };
    }
    if (e instanceof api.RefusedError) {
      answered.add(tx);
      waiting.delete(tx);
      changed();
      return { ok: false, message: e.message };
    }
    return { ok: false, message: e.message };
  }
}

/// Badge in or out on one account: signed presence with the time of the press.
export async function badge(account, state) {
  const time = Math.floor(Date.now() / 1000);
  const signature = await sign(account.edKey, badgeSigningBytes(account.appId, state, time));
  try {
    return await api.badge(account, { state, time, signature });
  } catch (e) {
    if (e instanceof api.RevokedError) {
      await markRevoked(account);
      changed();
      return { ok: false, message: "This app was revoked on the server: remove the account." };
    }
    return { ok: false, message: e.message };
  }
}
