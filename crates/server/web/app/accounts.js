// Accounts: reading a registration link, registering with a server, the list the app keeps.

import * as api from "./api.js";
import { b64, generateKeys, hex, keyId, randomBytes, totpFromUri } from "./crypto.js";
import * as store from "./store.js";

/// Reads a registration link as crates/token/src/link.rs does:
/// `https://HOST:PORT[/prefix]/app/register?code=CODE&pin=sha256:HEX`. The pin is kept for
/// display only: a browser trusts the server by its own certificate store.
export function parseLink(text) {
  let u;
  try {
    u = new URL(String(text).trim());
  } catch {
    throw new Error("This is not a registration link.");
  }
  if (u.protocol !== "https:") throw new Error("A registration link must be an https:// link.");
  if (u.username || u.password) throw new Error("A registration link must not carry a user name or password.");
  const path = u.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/app/register")) throw new Error("A registration link's path ends with /app/register.");
  const codes = u.searchParams.getAll("code");
  if (codes.length !== 1 || !codes[0]) throw new Error("The registration link has no code.");
  const code = codes[0];
  if (code.length > 256 || !/^[\x21-\x7e]+$/.test(code)) throw new Error("The registration code has unexpected characters.");
  const prefix = path.slice(0, -"/app/register".length);
  return { server: u.origin + prefix, host: u.hostname, code, pin: u.searchParams.get("pin") || "" };
}

export function defaultDeviceName() {
  const ua = navigator.userAgent;
  const kind = /iPhone|iPad/.test(ua) ? "iPhone" : /Android/.test(ua) ? "Android phone" : /Linux/.test(ua) ? "Linux" : "browser";
  return `web app on ${kind}`;
}

/// Registers a new account with the server in `link`: new keys (private halves never
/// leave the browser), the public halves sent, the answer kept.
export async function register(link, deviceName) {
  const keys = await generateKeys();
  const reg = await api.register(link.server, {
    code: link.code,
    device_name: deviceName,
    x25519_public: b64(keys.xPublic),
    ed25519_public: b64(keys.edPublic),
  });
  if (!reg || typeof reg.app_key !== "string" || typeof reg.user !== "string" || typeof reg.app_id !== "string") {
    throw new Error("The server's answer to the registration is not understood.");
  }
  const totp = await totpFromUri(reg.otpauth_uri);
  const existing = await store.accounts();
  let name = `${reg.user}@${link.host}`;
  for (let i = 2; existing.some((a) => a.name === name); i++) name = `${reg.user}@${link.host} (${i})`;
  const account = {
    id: hex(randomBytes(16)),
    name,
    server: link.server,
    host: link.host,
    user: reg.user,
    appId: reg.app_id,
    appKey: reg.app_key,
    deviceName,
    registeredAt: Date.now(),
    xKey: keys.xKey,
    xPublic: keys.xPublic,
    keyId: hex(await keyId(keys.xPublic)),
    edKey: keys.edKey,
    totp,
    revoked: false,
  };
  await store.putAccount(account);
  await store.persist();
  return account;
}

export async function markRevoked(account) {
  account.revoked = true;
  await store.putAccount(account);
}
