// The server's token-app API, as crates/token/src/api.rs calls it: JSON over HTTPS, the app
// key as a bearer credential. Every call has a deadline.

export const LONG_POLL_SECS = 25;
const MARGIN_MS = 15000;

/// The server refused this app's key: the app was revoked (or the account removed).
export class RevokedError extends Error {}
/// The server could not be reached (no network, TLS refused, timeout).
export class UnreachableError extends Error {}
/// The server answered with a refusal; `code` is its error code.
export class RefusedError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(server, path, { method = "GET", key, body, timeoutMs = 20000 } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const headers = { accept: "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let resp;
  try {
    resp = await fetch(server + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (e) {
    throw new UnreachableError(
      ctl.signal.aborted ? `${new URL(server).host} did not answer in time` : `cannot reach ${new URL(server).host}`,
    );
  } finally {
    clearTimeout(timer);
  }
  let json = null;
  try {
    json = await resp.json();
  } catch {
    json = null;
  }
  if (resp.ok) return json;
  const code = json && typeof json.error === "string" ? json.error : "";
  const message = json && typeof json.message === "string" ? json.message : `the server answered ${resp.status}`;
  if (resp.status === 401 && key) throw new RevokedError(message);
  throw new RefusedError(resp.status, code, message);
}

/// `POST /v1/apps/register`: the one-time code is the only credential.
export function register(server, req) {
  return call(server, "/v1/apps/register", { method: "POST", body: req });
}

/// `GET /v1/apps/pending?wait=N`: the push requests waiting now, or the first within `wait` s.
export function pending(account, wait = LONG_POLL_SECS) {
  return call(account.server, `/v1/apps/pending?wait=${Math.min(wait, 30)}`, {
    key: account.appKey,
    timeoutMs: wait * 1000 + MARGIN_MS,
  });
}

/// `POST /v1/apps/respond`: a signed approval or denial.
export function respond(account, body) {
  return call(account.server, "/v1/apps/respond", { method: "POST", key: account.appKey, body });
}

/// `POST /v1/apps/badge`: signed presence.
export function badge(account, body) {
  return call(account.server, "/v1/apps/badge", { method: "POST", key: account.appKey, body });
}
