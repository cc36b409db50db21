// Runs in the web app's page: answers the shared token-app vectors
// (crates/token/tests/token-app-vectors.json) with the app's own crypto module and returns
// one line per disagreement (an empty list: the web app agrees with latchkey-token).
const v = arg;
const c = await import(new URL("crypto.js", location.href).href);
const H = c.fromHex;
const bad = [];
{
  const r = v.hpke_rfc9180_a21;
  const k = await c.importVectorKeys({ x25519Secret: H(r.sk_r), x25519Public: H(r.pk_r) });
  const pt = await c.hpkeOpen(k.xKey, H(r.pk_r), H(r.enc), H(r.info), H(r.aad), H(r.ct));
  if (c.hex(pt) !== r.pt) bad.push("RFC 9180 A.2.1: wrong plaintext");
}
for (const t of v.challenges) {
  const k = await c.importVectorKeys({ x25519Secret: H(t.x25519_secret), x25519Public: H(t.x25519_public) });
  const xPublic = H(t.x25519_public);
  const account = { name: "vector", user: t.account_user, keyId: c.hex(await c.keyId(xPublic)), xPublic, xKey: k.xKey };
  let got;
  try {
    const r = await c.answerChallenge([account], t.text, t.now);
    got = { code: r.code, user: r.user, host: r.host, client_id: r.clientId, expires_at: r.expiresAt };
  } catch (e) {
    got = e instanceof c.ChallengeError ? { error: e.kind } : { error: `unexpected: ${e}` };
  }
  const want = t.expect;
  const same = Object.keys(want).length === Object.keys(got).length && Object.keys(want).every((key) => want[key] === got[key]);
  if (!same) bad.push(`challenge "${t.name}": expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}
for (const t of v.push) {
  const k = await c.importVectorKeys({ ed25519Seed: H(t.ed25519_seed), ed25519Public: H(t.ed25519_public) });
  const bytes = c.pushSigningBytes(t.tx, t.decision, t.number ?? null, t.nonce);
  if (new TextDecoder().decode(bytes) !== t.signing_bytes) bad.push(`push ${t.tx}: signing bytes differ`);
  const sig = await c.sign(k.edKey, bytes);
  if (sig !== t.signature) bad.push(`push ${t.tx}: signature differs`);
}
for (const t of v.badge) {
  const k = await c.importVectorKeys({ ed25519Seed: H(t.ed25519_seed), ed25519Public: H(t.ed25519_public) });
  const bytes = c.badgeSigningBytes(t.app_id, t.state, t.time);
  if (new TextDecoder().decode(bytes) !== t.signing_bytes) bad.push(`badge ${t.state}: signing bytes differ`);
  if ((await c.sign(k.edKey, bytes)) !== t.signature) bad.push(`badge ${t.state}: signature differs`);
}
for (const t of v.totp) {
  const totp = await c.totpFromUri(t.otpauth_uri);
  const got = (await c.totpCode(totp, t.time)).code;
  if (got !== t.code) bad.push(`totp ${t.otpauth_uri} at ${t.time}: expected ${t.code}, got ${got}`);
}
return { bad, counts: [v.challenges.length, v.push.length, v.badge.length, v.totp.length] };
