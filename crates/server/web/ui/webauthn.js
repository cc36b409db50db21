// The self-service portal's WebAuthn ceremonies (docs/web.md). The page carries the
// server's options in <script type="application/json" id="webauthn-options">; this file
// calls navigator.credentials.create (registration, on the #key-register button) or .get
// (sign-in, at once and on #key-retry), puts the answer in the hidden fields of
// form#key-form and submits it as a normal form post (its CSRF field is already there).
// Errors are told in #key-status. No inline script: the CSP allows only our own files.
'use strict';

(function () {
  const status = document.getElementById('key-status');
  const form = document.getElementById('key-form');
  const block = document.getElementById('webauthn-options');
  if (!status || !form || !block) return;

  function say(text) {
    status.textContent = text;
  }

  function fromB64url(s) {
    const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    const pad = b64.length % 4 === 0 ? '' : '='.repeat(4 - (b64.length % 4));
    const bin = atob(b64 + pad);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = '';
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function set(name, value) {
    const input = form.querySelector('input[name="' + name + '"]');
    if (input) input.value = value;
  }

  function why(e) {
    if (e && e.name === 'NotAllowedError') {
      return 'The security key did not answer, or the request was cancelled or timed out. Try again.';
    }
    if (e && e.name === 'InvalidStateError') {
      return 'This security key is already registered for your account.';
    }
    if (e && e.name === 'SecurityError') {
      return 'This page\'s address does not match the server\'s web_rp_id: ask your administrator (see docs/web.md).';
    }
    return 'The security key could not be used: ' + (e && e.message ? e.message : String(e));
  }

  let opts;
  try {
    opts = JSON.parse(block.textContent);
  } catch (e) {
    say('The page is damaged: reload it.');
    return;
  }
  if (!window.PublicKeyCredential || !navigator.credentials) {
    say('This browser cannot use security keys or passkeys.');
    return;
  }

  async function register() {
    const label = document.getElementById('key-label');
    set('label', label ? label.value : '');
    say('Touch your security key, or confirm with your passkey…');
    try {
      const cred = await navigator.credentials.create({
        publicKey: {
          rp: { id: opts.rp_id, name: opts.rp_name },
          user: {
            id: fromB64url(opts.user_id),
            name: opts.user_name,
            displayName: opts.user_display_name,
          },
          challenge: fromB64url(opts.challenge),
          pubKeyCredParams: opts.algorithms.map((alg) => ({ type: 'public-key', alg: alg })),
          excludeCredentials: opts.exclude_credentials.map((id) => ({
            type: 'public-key',
            id: fromB64url(id),
          })),
          authenticatorSelection: { userVerification: 'required', residentKey: 'preferred' },
          attestation: 'none',
          timeout: opts.timeout_ms,
        },
      });
      set('attestation_object', toB64url(cred.response.attestationObject));
      set('client_data_json', toB64url(cred.response.clientDataJSON));
      say('Registering…');
      form.submit();
    } catch (e) {
      say(why(e));
    }
  }

  async function signin() {
    say('Touch your security key, or confirm with your passkey…');
    try {
      const cred = await navigator.credentials.get({
        publicKey: {
          rpId: opts.rp_id,
          challenge: fromB64url(opts.challenge),
          allowCredentials: opts.allow_credentials.map((id) => ({
            type: 'public-key',
            id: fromB64url(id),
          })),
          userVerification: 'required',
          timeout: opts.timeout_ms,
        },
      });
      set('credential_id', toB64url(cred.rawId));
      set('authenticator_data', toB64url(cred.response.authenticatorData));
      set('client_data_json', toB64url(cred.response.clientDataJSON));
      set('signature', toB64url(cred.response.signature));
      say('Signing in…');
      form.submit();
    } catch (e) {
      say(why(e));
    }
  }

  if (opts.mode === 'create') {
    const button = document.getElementById('key-register');
    if (button) button.addEventListener('click', register);
  } else if (opts.mode === 'get') {
    const retry = document.getElementById('key-retry');
    if (retry) retry.addEventListener('click', signin);
    signin();
  }
})();
