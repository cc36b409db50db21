// Drives Debian's Chromium with playwright-core for latchkey's end-to-end tests
// (crates/testkit/src/browser.rs starts it and speaks this protocol).
//
// One JSON request a line on stdin, {"id":N,"cmd":"…",…}; one JSON reply a line on stdout,
// {"id":N,"ok":true,"value":…} or {"id":N,"ok":false,"error":"one line"}. Logs go to stderr.
// Requests run one after another, each bounded by its `timeout_ms` (15 s by default, 30 s for
// launch): a command that fails or runs out of time is an error reply, never a hang. The
// process closes the browser and exits when stdin closes, so a test that dies leaves nothing.
//
// The driver knows no page: selectors, scripts and URLs come from the tests.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CHROMIUM = '/usr/bin/chromium';
const DEFAULT_TIMEOUT_MS = 15_000;
const LAUNCH_TIMEOUT_MS = 30_000;

// Chromium calls home for updates, safe browsing lists, sync and field trials when these are
// missing; on a closed network those attempts flood the logs and slow every start. QUIC off:
// the tests speak to loopback over TCP only. The GPU process is useless headless.
const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let context = null;
let page = null;
let userDataDir = null;
let cdp = null;
let consoleMessages = [];
let pageErrors = [];

function log(...parts) {
  process.stderr.write(`driver: ${parts.join(' ')}\n`);
}

function reply(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// Playwright's messages carry a multi-line call log; the first line says what went wrong.
function oneLine(err) {
  const text = String(err && err.message ? err.message : err);
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown error';
}

function need(req, field) {
  if (req[field] === undefined || req[field] === null) {
    throw new Error(`${req.cmd}: missing field "${field}"`);
  }
  return req[field];
}

function thePage() {
  if (!page) throw new Error('no browser: send launch first');
  return page;
}

function watch(p) {
  p.on('console', (m) => consoleMessages.push({ type: m.type(), text: m.text() }));
  p.on('pageerror', (e) => pageErrors.push(oneLine(e)));
}

async function launch(req, timeout) {
  if (context) throw new Error('launch: the browser is already running');
  const args = [...BASE_ARGS, ...(req.args ?? [])];
  // Trusting latchkeyd's self-signed certificate by its key, as a pinned certificate: a
  // page then has a valid TLS state, which service workers require (they refuse to register
  // on an origin with a certificate error, whatever ignoreHTTPSErrors says).
  if (req.spki && req.spki.length) {
    args.push(`--ignore-certificate-errors-spki-list=${req.spki.join(',')}`);
  }
  if (req.camera) {
    args.push(
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-video-capture=${req.camera}`,
    );
  }
  // A fresh profile each launch: no cache, storage or service worker from an earlier test.
  userDataDir = mkdtempSync(join(tmpdir(), 'latchkey-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args,
    viewport: req.viewport ?? { width: 412, height: 915 },
    colorScheme: req.colorScheme ?? 'light',
    timeout,
  });
  context.setDefaultTimeout(timeout);
  if (req.permissions && req.permissions.length) {
    await context.grantPermissions(req.permissions, req.origin ? { origin: req.origin } : {});
  }
  page = context.pages()[0] ?? (await context.newPage());
  watch(page);
  return { version: context.browser()?.version() ?? null, args };
}

async function closeBrowser() {
  const ctx = context;
  context = null;
  page = null;
  cdp = null;
  if (ctx) await ctx.close().catch((e) => log('close:', oneLine(e)));
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  userDataDir = null;
}

// Chromium's virtual authenticators (the DevTools protocol's WebAuthn domain) stand in for
// a USB security key or a platform passkey: the page's navigator.credentials calls reach
// them as they would real hardware, with user presence and verification answered at once.
async function devtools() {
  if (!cdp) {
    cdp = await context.newCDPSession(thePage());
    await cdp.send('WebAuthn.enable', { enableUI: false });
  }
  return cdp;
}

// `expr` is the body of an async function taking `arg`. It is sent as a string expression
// (Runtime.evaluate), which a page's Content-Security-Policy does not govern; building it
// with `new Function` inside the page would need 'unsafe-eval' and fail on a strict CSP.
function evalSource(expr, arg) {
  return `(async (arg) => {\n${expr}\n})(${JSON.stringify(arg ?? null)})`;
}

async function waitText(p, req, timeout) {
  const handle = await p.waitForFunction(
    ([selector, pattern]) => {
      const el = document.querySelector(selector);
      if (!el) return null;
      const m = el.innerText.match(new RegExp(pattern));
      return m ? m[0] : null;
    },
    [need(req, 'selector'), need(req, 'pattern')],
    { timeout },
  );
  return handle.jsonValue();
}

const commands = {
  launch,
  async goto(req, timeout) {
    const resp = await thePage().goto(need(req, 'url'), { timeout, waitUntil: 'load' });
    return { status: resp ? resp.status() : null, url: thePage().url() };
  },
  async reload(_req, timeout) {
    const resp = await thePage().reload({ timeout, waitUntil: 'load' });
    return { status: resp ? resp.status() : null, url: thePage().url() };
  },
  async click(req, timeout) {
    await thePage().locator(need(req, 'selector')).first().click({ timeout });
    return null;
  },
  async fill(req, timeout) {
    await thePage().locator(need(req, 'selector')).first().fill(String(need(req, 'text')), { timeout });
    return null;
  },
  async press(req, timeout) {
    await thePage().locator(need(req, 'selector')).first().press(need(req, 'key'), { timeout });
    return null;
  },
  async text(req, timeout) {
    return thePage().locator(need(req, 'selector')).first().innerText({ timeout });
  },
  async count(req) {
    return thePage().locator(need(req, 'selector')).count();
  },
  async wait(req, timeout) {
    await thePage()
      .locator(need(req, 'selector'))
      .first()
      .waitFor({ state: req.state ?? 'visible', timeout });
    return null;
  },
  async wait_text(req, timeout) {
    return waitText(thePage(), req, timeout);
  },
  async eval(req) {
    const value = await thePage().evaluate(evalSource(need(req, 'expr'), req.arg));
    return value === undefined ? null : value;
  },
  async screenshot(req, timeout) {
    const path = need(req, 'path');
    if (req.element) {
      await thePage().locator(req.element).first().screenshot({ path, timeout });
      return path;
    }
    await thePage().screenshot({ path, fullPage: Boolean(req.full_page), timeout });
    return path;
  },
  async set_offline(req) {
    if (!context) throw new Error('no browser: send launch first');
    await context.setOffline(Boolean(need(req, 'offline')));
    return null;
  },
  async console() {
    const out = { messages: consoleMessages, errors: pageErrors };
    consoleMessages = [];
    pageErrors = [];
    return out;
  },
  async webauthn_add(req) {
    const session = await devtools();
    const { authenticatorId } = await session.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: req.protocol ?? 'ctap2',
        transport: req.transport ?? 'usb',
        hasResidentKey: Boolean(req.resident_key ?? true),
        hasUserVerification: Boolean(req.user_verification ?? true),
        isUserVerified: Boolean(req.user_verified ?? true),
        automaticPresenceSimulation: true,
      },
    });
    return authenticatorId;
  },
  async webauthn_credentials(req) {
    const session = await devtools();
    const { credentials } = await session.send('WebAuthn.getCredentials', {
      authenticatorId: need(req, 'authenticator'),
    });
    return credentials.map((c) => ({
      credential_id: c.credentialId,
      rp_id: c.rpId ?? null,
      resident: Boolean(c.isResidentCredential),
      sign_count: c.signCount,
    }));
  },
  async webauthn_remove(req) {
    const session = await devtools();
    await session.send('WebAuthn.removeVirtualAuthenticator', {
      authenticatorId: need(req, 'authenticator'),
    });
    return null;
  },
  async cookies(req) {
    if (!context) throw new Error('no browser: send launch first');
    return context.cookies(req.urls ?? []);
  },
  async set_cookies(req) {
    if (!context) throw new Error('no browser: send launch first');
    if (req.clear) await context.clearCookies();
    await context.addCookies(need(req, 'cookies'));
    return null;
  },
  async close() {
    await closeBrowser();
    return null;
  },
};

async function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    reply({ id: null, ok: false, error: `not JSON: ${oneLine(e)}` });
    return;
  }
  const id = req.id ?? null;
  const run = commands[req.cmd];
  if (!run) {
    reply({ id, ok: false, error: `unknown command ${JSON.stringify(req.cmd)}` });
    return;
  }
  const timeout = req.timeout_ms ?? (req.cmd === 'launch' ? LAUNCH_TIMEOUT_MS : DEFAULT_TIMEOUT_MS);
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms`)), timeout);
  });
  try {
    const value = await Promise.race([run(req, timeout), limit]);
    reply({ id, ok: true, value: value ?? null });
  } catch (e) {
    // Name what the command was after, so the test's failure says which step it was.
    const what = req.selector ?? req.url ?? '';
    reply({ id, ok: false, error: `${req.cmd}${what ? ` ${what}` : ''}: ${oneLine(e)}` });
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    await handle(line);
  }
  await closeBrowser();
  process.exit(0);
}

process.on('unhandledRejection', (e) => log('unhandled rejection:', oneLine(e)));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => closeBrowser().finally(() => process.exit(1)));
}
main().catch((e) => {
  log('fatal:', oneLine(e));
  process.exit(1);
});
