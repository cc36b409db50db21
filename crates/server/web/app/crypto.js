// The token app's cryptography, with the same wire formats as `latchkey-token`
// (crates/crypto, crates/proto): the offline QR challenge (base45, HPKE base mode with
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305), TOTP (RFC 6238) and the signed
// push and badge messages (Ed25519).
//
// Long-term keys are WebCrypto keys created non-extractable: X25519 (the challenge key),
// Ed25519 (the signing key) and the TOTP seed as an HMAC key. Scripts can use them but never
// read them. WebCrypto has no ChaCha20Poly1305, so the AEAD alone comes from the vendored
// @noble/ciphers (vendor/README.md; docs/decisions.md says why not a second suite).

import { chacha20poly1305 } from "./vendor/noble-ciphers/chacha.js";

const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();

/// ---- encodings ---------------------------------------------------------------------------

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(s) {
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new Error("not hex");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function b64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function fromB64(s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

function b64url(bytes) {
  return b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Base45 (RFC 9285), as strict as crates/crypto/src/base45.rs.
export function base45Decode(text) {
  if (text.length % 3 === 1) throw new ChallengeError("not_a_challenge", "base45 length is not valid");
  const out = [];
  for (let i = 0; i < text.length; i += 3) {
    const group = text.slice(i, i + 3);
    let n = 0;
    for (let j = group.length - 1; j >= 0; j--) {
      const v = B45.indexOf(group[j]);
      if (v < 0) throw new ChallengeError("not_a_challenge", "character outside the base45 alphabet");
      n = n * 45 + v;
    }
    if (group.length === 3) {
      if (n > 0xffff) throw new ChallengeError("not_a_challenge", "base45 group too large");
      out.push(n >> 8, n & 0xff);
    } else {
      if (n > 0xff) throw new ChallengeError("not_a_challenge", "base45 group too large");
      out.push(n);
    }
  }
  return new Uint8Array(out);
}

function concat(...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u16be(n) {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
}

/// ---- HPKE (RFC 9180), base mode, single shot, open side only --------------------------

const KEM_SUITE = concat(enc.encode("KEM"), u16be(0x0020));
const HPKE_SUITE = concat(enc.encode("HPKE"), u16be(0x0020), u16be(0x0001), u16be(0x0003));
const V1 = enc.encode("HPKE-v1");

async function hmacSha256(key, data) {
  // WebCrypto refuses a zero-length HMAC key; HMAC pads keys with zeros to the block size, so
  // an empty key (HKDF-Extract's default salt) is the same key as 32 zero bytes.
  const raw = key.length === 0 ? new Uint8Array(32) : key;
  const k = await subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, data));
}

function labeledExtract(suite, salt, label, ikm) {
  return hmacSha256(salt, concat(V1, suite, enc.encode(label), ikm));
}

async function labeledExpand(suite, prk, label, info, len) {
  // L ≤ 32: one HKDF-Expand block is enough (key 32, nonce 12, shared secret 32).
  const t1 = await hmacSha256(prk, concat(u16be(len), V1, suite, enc.encode(label), info, new Uint8Array([1])));
  return t1.slice(0, len);
}

/// Opens an HPKE base-mode message sealed to the X25519 key pair (`skR`, a CryptoKey; `pkR`,
/// its raw public key). Throws on any change to enc, info, aad or ciphertext.
export async function hpkeOpen(skR, pkR, encapsulated, info, aad, ct) {
  const pkE = await subtle.importKey("raw", encapsulated, { name: "X25519" }, true, []);
  // WebCrypto refuses an all-zero X25519 output (a low-order point), as RFC 9180 §7.1.4 asks.
  const dh = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pkE }, skR, 256));
  const eaePrk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "eae_prk", dh);
  const shared = await labeledExpand(KEM_SUITE, eaePrk, "shared_secret", concat(encapsulated, pkR), 32);
  const pskIdHash = await labeledExtract(HPKE_SUITE, new Uint8Array(0), "psk_id_hash", new Uint8Array(0));
  const infoHash = await labeledExtract(HPKE_SUITE, new Uint8Array(0), "info_hash", info);
  const ctx = concat(new Uint8Array([0]), pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE, shared, "secret", new Uint8Array(0));
  const key = await labeledExpand(HPKE_SUITE, secret, "key", ctx, 32);
  const nonce = await labeledExpand(HPKE_SUITE, secret, "base_nonce", ctx, 12);
  try {
    return chacha20poly1305(key, nonce, aad).decrypt(ct);
  } finally {
    key.fill(0);
    dh.fill(0);
  }
}

/// ---- the offline challenge (crates/proto/src/offline.rs, `Challenge`) -----------------

export const CHALLENGE_PREFIX = "LK1:";
const CHALLENGE_VERSION = 1;
const CHALLENGE_INFO = enc.encode("latchkey offline challenge v1");
const MAX_FIELD = 64;
const CT_LEN = 5 + 16;

/// A challenge that cannot be answered, with its kind: `not_a_challenge`, `expired`,
/// `unknown_key`, `wrong_user` or `damaged` (the shared test vectors use the same words).
export class ChallengeError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

/// Parses the text form exactly as crates/crypto/src/challenge.rs `from_text` does.
export function parseChallenge(text) {
  let t = text.replace(/^[\n\r\t]+|[\n\r\t]+$/g, "").trimStart();
  if (!t.startsWith(CHALLENGE_PREFIX)) {
    throw new ChallengeError("not_a_challenge", `not a latchkey challenge (no ${CHALLENGE_PREFIX} prefix)`);
  }
  const body = t.slice(CHALLENGE_PREFIX.length);
  if (body.length > 1024) throw new ChallengeError("not_a_challenge", "challenge text is too long");
  const bytes = base45Decode(body);
  let at = 0;
  const take = (n) => {
    if (bytes.length - at < n) throw new ChallengeError("not_a_challenge", "challenge is truncated");
    const s = bytes.slice(at, at + n);
    at += n;
    return s;
  };
  const field = () => {
    const len = take(1)[0];
    if (len === 0 || len > MAX_FIELD) throw new ChallengeError("not_a_challenge", "challenge field length is out of range");
    let s;
    try {
      s = new TextDecoder("utf-8", { fatal: true }).decode(take(len));
    } catch (e) {
      if (e instanceof ChallengeError) throw e;
      throw new ChallengeError("not_a_challenge", "challenge field is not UTF-8");
    }
    if (/\p{Cc}/u.test(s)) throw new ChallengeError("not_a_challenge", "challenge field has control characters");
    return s;
  };
  const version = take(1)[0];
  if (version !== CHALLENGE_VERSION) {
    throw new ChallengeError("not_a_challenge", `challenge version ${version} is not supported`);
  }
  const keyId = take(4);
  const e = take(4);
  const expiresAt = ((e[0] << 24) >>> 0) + (e[1] << 16) + (e[2] << 8) + e[3];
  take(8); // nonce: part of the header, authenticated with it
  const user = field();
  const host = field();
  const clientId = field();
  const header = bytes.slice(0, at);
  const encapsulated = take(32);
  const ciphertext = take(CT_LEN);
  if (at !== bytes.length) throw new ChallengeError("not_a_challenge", "challenge has trailing bytes");
  return { keyId, expiresAt, user, host, clientId, header, encapsulated, ciphertext };
}

/// The first 4 bytes of SHA-256 of an X25519 public key: which key a challenge is for.
export async function keyId(publicRaw) {
  return new Uint8Array(await subtle.digest("SHA-256", publicRaw)).slice(0, 4);
}

function hhmm(unix) {
  const d = new Date(unix * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/// Answers a challenge with the matching account: `accounts` are `{name, user, keyId (hex),
/// xPublic (Uint8Array), xKey (CryptoKey)}`. The same checks, in the same order, as
/// crates/token/src/offline.rs `open`.
export async function answerChallenge(accounts, text, now) {
  const c = parseChallenge(text);
  if (now > c.expiresAt) {
    throw new ChallengeError(
      "expired",
      `This challenge for ${c.user}@${c.host} expired at ${hhmm(c.expiresAt)}: start the login again.`,
    );
  }
  const id = hex(c.keyId);
  const account = accounts.find((a) => a.keyId === id);
  if (!account) {
    throw new ChallengeError(
      "unknown_key",
      `This challenge for ${c.user}@${c.host} was made for another app's key: none of this app's accounts can answer it.`,
    );
  }
  if (account.user !== c.user) {
    throw new ChallengeError(
      "wrong_user",
      `This challenge is for user ${c.user} but the matching account ${account.name} belongs to ${account.user}.`,
    );
  }
  let pt;
  try {
    pt = await hpkeOpen(account.xKey, account.xPublic, c.encapsulated, CHALLENGE_INFO, c.header, c.ciphertext);
  } catch {
    throw new ChallengeError("damaged", "The challenge does not open with this app's key (damaged or forged).");
  }
  const digits = pt[0];
  const code = ((pt[1] << 24) >>> 0) + (pt[2] << 16) + (pt[3] << 8) + pt[4];
  pt.fill(0);
  if (digits < 6 || digits > 9 || code >= 10 ** digits) {
    throw new ChallengeError("damaged", "The challenge holds a code out of range.");
  }
  return {
    account: account.name,
    user: c.user,
    host: c.host,
    clientId: c.clientId,
    expiresAt: c.expiresAt,
    expiresHhmm: hhmm(c.expiresAt),
    code: String(code).padStart(digits, "0"),
  };
}

/// ---- keys --------------------------------------------------------------------------------

/// Checks that this browser's WebCrypto has what the app needs; a sentence if not.
export async function missingAlgorithms() {
  const missing = [];
  for (const alg of ["X25519", "Ed25519"]) {
    try {
      await subtle.generateKey({ name: alg }, false, alg === "X25519" ? ["deriveBits"] : ["sign", "verify"]);
    } catch {
      missing.push(alg);
    }
  }
  return missing;
}

/// A new X25519 and Ed25519 key pair, private halves non-extractable.
export async function generateKeys() {
  const x = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const ed = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const xPublic = new Uint8Array(await subtle.exportKey("raw", x.publicKey));
  const edPublic = new Uint8Array(await subtle.exportKey("raw", ed.publicKey));
  return { xKey: x.privateKey, xPublic, edKey: ed.privateKey, edPublic };
}

/// Imports fixed private keys, for the shared test vectors only (the app itself only ever
/// generates keys): an X25519 secret and an Ed25519 seed, both 32 raw bytes.
export async function importVectorKeys({ x25519Secret, x25519Public, ed25519Seed, ed25519Public }) {
  const out = {};
  if (x25519Secret) {
    out.xKey = await subtle.importKey(
      "jwk",
      { kty: "OKP", crv: "X25519", d: b64url(x25519Secret), x: b64url(x25519Public) },
      { name: "X25519" },
      false,
      ["deriveBits"],
    );
  }
  if (ed25519Seed) {
    out.edKey = await subtle.importKey(
      "jwk",
      { kty: "OKP", crv: "Ed25519", d: b64url(ed25519Seed), x: b64url(ed25519Public) },
      { name: "Ed25519" },
      false,
      ["sign"],
    );
  }
  return out;
}

/// ---- signed messages (crates/proto/src/app.rs) ----------------------------------------

export function pushSigningBytes(tx, decision, number, nonce) {
  const n = number === null || number === undefined ? "-" : String(number);
  return enc.encode(`latchkey-push-v1\n${tx}\n${decision}\n${n}\n${nonce}`);
}

export function badgeSigningBytes(appId, state, time) {
  return enc.encode(`latchkey-badge-v1\n${appId}\n${state}\n${time}`);
}

/// Ed25519 signature, base64 (standard, padded) as the server reads it.
export async function sign(edKey, bytes) {
  return b64(new Uint8Array(await subtle.sign({ name: "Ed25519" }, edKey, bytes)));
}

/// ---- TOTP (RFC 6238 over RFC 4226) --------------------------------------------------------

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32Decode(s) {
  const clean = s.replace(/[\s=-]/g, "").toUpperCase();
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const v = BASE32.indexOf(ch);
    if (v < 0) throw new Error("the secret is not base32");
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return new Uint8Array(out);
}

const HASHES = { SHA1: "SHA-1", SHA256: "SHA-256", SHA512: "SHA-512" };

/// Reads an `otpauth://totp/…` URI into an HMAC key (non-extractable) and its parameters.
/// The seed bytes live only inside this function.
export async function totpFromUri(uri) {
  let u;
  try {
    u = new URL(uri);
  } catch {
    throw new Error("the TOTP URI is not a URI");
  }
  if (u.protocol !== "otpauth:" || u.host !== "totp") throw new Error("not an otpauth://totp/ URI");
  const p = u.searchParams;
  const algorithm = (p.get("algorithm") || "SHA1").toUpperCase();
  const digits = Number(p.get("digits") || "6");
  const period = Number(p.get("period") || "30");
  if (!HASHES[algorithm]) throw new Error(`TOTP algorithm ${algorithm} is not supported`);
  if (!Number.isInteger(digits) || digits < 6 || digits > 9) throw new Error("TOTP digits must be 6 to 9");
  if (!Number.isInteger(period) || period < 1 || period > 3600) throw new Error("TOTP period is out of range");
  const seed = base32Decode(p.get("secret") || "");
  if (seed.length < 10) throw new Error("the TOTP secret is too short");
  const key = await subtle.importKey("raw", seed, { name: "HMAC", hash: HASHES[algorithm] }, false, ["sign"]);
  seed.fill(0);
  return { key, algorithm, digits, period };
}

/// The code at Unix time `now` (seconds) and the seconds it stays valid.
export async function totpCode(totp, now) {
  const counter = Math.floor(now / totp.period);
  const msg = new Uint8Array(8);
  new DataView(msg.buffer).setBigUint64(0, BigInt(counter));
  const mac = new Uint8Array(await subtle.sign("HMAC", totp.key, msg));
  const off = mac[mac.length - 1] & 0x0f;
  const bin =
    ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  const code = String(bin % 10 ** totp.digits).padStart(totp.digits, "0");
  return { code, remaining: totp.period - (now % totp.period) };
}

/// ---- the app PIN ---------------------------------------------------------------------------

export const PIN_ITERATIONS = 310000;

/// PBKDF2-SHA256 of the PIN: what is stored to check it (never the PIN).
export async function pinHash(pin, salt, iterations = PIN_ITERATIONS) {
  const k = await subtle.importKey("raw", enc.encode(pin), "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, k, 256));
}

/// Constant-time equality of two byte strings of the same length.
export function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}
