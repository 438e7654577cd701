// Drives an official Amplitude browser SDK in a real headless Chromium through the conformance
// kit's third-party sender contract (docs/sender-contract.md): one harness, two SDK drivers.
//
//   node adapter.mjs --sdk browser-sdk    @amplitude/analytics-browser 2.x (page-browser-sdk.js)
//   node adapter.mjs --sdk amplitude-js   amplitude-js 8.x (page-amplitude-js.js)
//
// The page is served by this process from its own origin (http://127.0.0.1:<port>/, a port
// other than the mock's), with the SDK's browser bundle loaded from node_modules, so every
// upload to the mock is a cross-origin request (CORS preflights included) as on a real site.
// Chromium is Debian's /usr/bin/chromium (CHROMIUM_BIN), started by this process in its own
// process group (so the runner's SIGKILL of the group kills the browser too) with its profile
// in AMPLITUDE_SENDER_STATE_DIR (contract 3; else a temporary directory), and driven over the
// DevTools protocol with puppeteer-core (connect only: it never downloads a browser).
//
// stdin:  JSON Lines, one Amplitude HTTP V2 event object a line, each handed to the SDK's
//         public API in the page (track(event) / amplitude-js logEvent) as soon as it arrives;
//         control lines: {"control":"flush"} -> the SDK's flush, awaited in the page;
//         {"control":"exit"} -> the user closes the tab: the page is closed the way a browser
//         closes a tab (visibilitychange to hidden, pagehide, unload: the SDK's beacon path),
//         the browser outlives it for ADAPTER_BEACON_GRACE_MS, then the process exits 0.
//         End of stdin -> flush, then wait for every event's result and for the SDK's stored
//         queue to empty, bounded by AMPLITUDE_DRAIN_DEADLINE_MS.
// stdout: JSON Lines {"seq":N,"outcome":"delivered"|"dropped","reason":"..."}, one per result
//         the SDK reports for an event of this process (2xx code -> delivered).
// stderr: logs (settings, SDK and page console, skipped lines, unsettled events).
//
// Only the SDKs' public APIs are used, and nothing is retried or deduplicated here.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
// The newest sender contract this harness speaks (state dir, restarts).
const CONTRACT = 3;

/** The two SDK drivers: package, the browser bundle loaded into the page, the page driver. */
const DRIVERS = {
  'browser-sdk': {
    pkg: '@amplitude/analytics-browser',
    bundle: 'lib/scripts/amplitude-min.umd.js',
    page: 'page-browser-sdk.js',
  },
  'amplitude-js': {
    pkg: 'amplitude-js',
    bundle: 'amplitude.umd.min.js',
    page: 'page-amplitude-js.js',
  },
};

const argSdk = (() => {
  const i = process.argv.indexOf('--sdk');
  return i >= 0 ? process.argv[i + 1] : 'browser-sdk';
})();
const ADAPTER = `${argSdk}-adapter`;
const log = (msg) => process.stderr.write(`[${ADAPTER}] ${msg}\n`);
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
console.log = console.error;
console.info = console.error;

const envInt = (name) => {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) {
    log(`ignoring ${name}=${JSON.stringify(raw)}: not an integer`);
    return undefined;
  }
  return n;
};

// Same bound as the Node adapter: AMPLITUDE_DRAIN_DEADLINE_MS less min(200 ms, 10 %).
const drainBudget = () => {
  const ms = envInt('AMPLITUDE_DRAIN_DEADLINE_MS');
  if (ms !== undefined && ms >= 0) {
    return { budgetMs: ms - Math.min(200, Math.floor(ms / 10)), desc: `drain_deadline_ms=${ms}` };
  }
  let secs = Number(process.env.ADAPTER_SHUTDOWN_TIMEOUT_S ?? '60');
  if (!Number.isFinite(secs)) secs = 60;
  return { budgetMs: secs * 1000, desc: `shutdown_timeout_s=${secs} (no AMPLITUDE_DRAIN_DEADLINE_MS)` };
};

const seqOf = (event) => {
  const seq = event?.event_properties?.conformance_seq;
  return Number.isInteger(seq) ? seq : null;
};

/** The state directory (contract 3) or a temporary one, and whether it is kept. */
const stateDir = () => {
  const dir = process.env.AMPLITUDE_SENDER_STATE_DIR;
  if (dir && dir.trim() !== '') {
    fs.mkdirSync(dir, { recursive: true });
    return { dir, kept: true };
  }
  return { dir: fs.mkdtempSync(path.join(os.tmpdir(), `${argSdk}-`)), kept: false };
};

/**
 * Serves the page, the SDK bundle and the driver on 127.0.0.1. The port is kept in the state
 * directory and reused by a restarted adapter: localStorage belongs to an origin, port
 * included, so a new port would hide what the SDK stored before the kill.
 */
async function servePage(dir, driver) {
  const pkgDir = path.dirname(require.resolve(`${driver.pkg}/package.json`));
  const bundle = fs.readFileSync(path.join(pkgDir, driver.bundle));
  const script = fs.readFileSync(path.join(HERE, driver.page));
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${argSdk} conformance page</title>` +
    '<script>["visibilitychange","pagehide","freeze"].forEach(function(t){addEventListener(t,function(){' +
    'navigator.sendBeacon("/lifecycle",t+" visibilityState="+document.visibilityState)},true)})</script>' +
    '<script src="/sdk.js"></script><script src="/driver.js"></script></head><body>conformance</body></html>';
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (type, body) => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url === '/') send('text/html; charset=utf-8', html);
    else if (url === '/sdk.js') send('text/javascript', bundle);
    else if (url === '/driver.js') send('text/javascript', script);
    else if (url === '/probe') send('text/html; charset=utf-8', '<!doctype html><title>probe</title>');
    else if (url === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    }
    else if (url === '/lifecycle') {
      // The page's own lifecycle probe (a beacon per visibilitychange / pagehide / freeze),
      // so the log shows what the browser fired when the tab was closed.
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        log(`page lifecycle: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`);
        res.writeHead(204);
        res.end();
      });
    }
    else {
      res.writeHead(404);
      res.end();
    }
  });
  const portFile = path.join(dir, 'page-port');
  let want = 0;
  try {
    want = Number(fs.readFileSync(portFile, 'utf8').trim()) || 0;
  } catch {
    want = 0;
  }
  const listen = (port) => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
  let port;
  try {
    port = await listen(want);
  } catch (err) {
    log(`page port ${want} of the previous start is taken (${err.code}): a new origin, so the ` +
        'SDK will not see what it stored before');
    port = await listen(0);
  }
  fs.writeFileSync(portFile, `${port}\n`);
  return { server, origin: `http://127.0.0.1:${port}`, reused: want !== 0 && port === want };
}

// HTTP V2 event fields a legacy event may carry under the same name.
const V2_FIELDS = new Set(['user_id', 'device_id', 'event_type', 'event_properties', 'user_properties',
  'groups', 'group_properties', 'app_version', 'platform', 'os_name', 'os_version', 'device_brand',
  'device_manufacturer', 'device_model', 'carrier', 'country', 'region', 'city', 'dma', 'language',
  'price', 'quantity', 'revenue', 'productId', 'revenueType', 'location_lat', 'location_lng', 'ip',
  'idfa', 'idfv', 'adid', 'android_id', 'event_id', 'session_id', 'insert_id', 'plan', 'partner_id',
  'version_name']);

/** One legacy (amplitude-js) event as an HTTP V2 event: `timestamp` -> `time`, the SDK's
 * per-event `uuid` -> `insert_id` (when it set none), `library` {name, version} -> "name/version";
 * fields HTTP V2 has no place for (`sequence_number`, `api_properties`, `user_agent`) and nulls
 * are left out. */
const legacyToV2 = (e) => {
  const out = {};
  for (const [k, v] of Object.entries(e ?? {})) {
    if (v === null || v === undefined) continue;
    if (V2_FIELDS.has(k)) out[k] = v;
  }
  if (Number.isFinite(e?.timestamp)) out.time = e.timestamp;
  if (out.insert_id === undefined && typeof e?.uuid === 'string') out.insert_id = e.uuid;
  if (e?.library && typeof e.library === 'object') out.library = `${e.library.name}/${e.library.version}`;
  return out;
};

/**
 * The legacy HTTP API stand-in for amplitude-js (the mock serves HTTP V2 and /batch, not the
 * legacy form endpoint): its own origin on 127.0.0.1, CORS like api.amplitude.com (any origin,
 * preflights allowed). Each form post (`client`, `e`, `v`, `upload_time`, `checksum`) becomes
 * exactly one HTTP V2 request to the mock with the same events (legacyToV2), and the mock's
 * status goes back as is: 200 -> body `success` (what the legacy API answers), anything else
 * -> the mock's body. A refused or failed connection to the mock -> the connection is
 * destroyed (the SDK sees a network error). No retries, no buffering, no dedup.
 */
async function startLegacyStandIn(v2Url) {
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': '*',
    'access-control-max-age': '86400',
  };
  const server = http.createServer((req, res) => {
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      res.end();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      let events;
      try {
        events = JSON.parse(form.get('e') ?? '[]');
      } catch {
        events = null;
      }
      if (!Array.isArray(events)) {
        res.writeHead(400, { ...cors, 'content-type': 'text/plain' });
        res.end('bad_event_data');
        return;
      }
      const body = JSON.stringify({ api_key: form.get('client') ?? '', events: events.map(legacyToV2) });
      const up = http.request(v2Url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      }, (r) => {
        const back = [];
        r.on('data', (c) => back.push(c));
        r.on('end', () => {
          const text = Buffer.concat(back).toString('utf8');
          res.writeHead(r.statusCode ?? 500, { ...cors, 'content-type': 'text/plain' });
          res.end(r.statusCode === 200 ? 'success' : text);
        });
        r.on('error', () => res.destroy());
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, endpoint: `127.0.0.1:${server.address().port}/` };
}

/**
 * Starts Chromium on `profile` in this process's process group and returns the DevTools
 * WebSocket URL and the child.
 */
function startChromium(profile) {
  const bin = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  fs.mkdirSync(profile, { recursive: true });
  // A killed browser leaves its profile lock behind; the whole group died with it.
  for (const f of ['SingletonLock', 'SingletonSocket', 'SingletonCookie']) {
    try {
      fs.rmSync(path.join(profile, f), { force: true });
    } catch {
      // not there
    }
  }
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions', '--no-default-browser-check',
    '--password-store=basic', '--use-mock-keychain',
    // Any host but the loopback fails to resolve: the page can reach only the mock and us.
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
    `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank',
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const verbose = process.env.ADAPTER_CHROMIUM_LOG === '1';
  return new Promise((resolve, reject) => {
    let found = false;
    const rl = readline.createInterface({ input: child.stderr, crlfDelay: Infinity });
    rl.on('line', (line) => {
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
      if (m && !found) {
        found = true;
        resolve({ ws: m[1], child, bin });
      } else if (verbose) {
        log(`chromium: ${line}`);
      }
    });
    child.once('error', (err) => reject(new Error(`starting ${bin}: ${err.message}`)));
    child.once('exit', (code, signal) => {
      if (!found) reject(new Error(`${bin} exited (${code ?? signal}) before DevTools was up`));
    });
  });
}

let chromiumChild = null;

/**
 * Runs in a page of the SDK's origin: the events the SDKs keep in localStorage (their unsent
 * queues: @amplitude/analytics-browser `AMP_unsent_<key prefix>`, amplitude-js
 * `amplitude_unsent_<key prefix>` and `amplitude_unsent_identify_…`), as
 * { count, seqs: conformance_seq of each }.
 */
function readStoredQueue() {
  const out = { count: 0, seqs: [] };
  for (let i = 0; i < localStorage.length; i += 1) {
    const k = localStorage.key(i);
    if (!k || !/^(AMP_unsent|amplitude_unsent)/.test(k)) continue;
    let v;
    try {
      v = JSON.parse(localStorage.getItem(k));
    } catch {
      continue;
    }
    if (!Array.isArray(v)) continue;
    for (const e of v) {
      out.count += 1;
      const seq = e?.event_properties?.conformance_seq;
      if (Number.isInteger(seq)) out.seqs.push(seq);
    }
  }
  return out;
}

async function main() {
  const driver = DRIVERS[argSdk];
  if (!driver) throw new Error(`unknown --sdk ${argSdk}; one of ${Object.keys(DRIVERS).join(', ')}`);
  const sdkVersion = require(`${driver.pkg}/package.json`).version;
  const useBatch = process.env.AMPLITUDE_USE_BATCH === '1';
  const url = (useBatch ? process.env.AMPLITUDE_BATCH_URL : process.env.AMPLITUDE_SERVER_URL) || '';
  const settings = {
    flushQueueSize: envInt('AMPLITUDE_FLUSH_QUEUE_SIZE'),
    flushIntervalMillis: envInt('AMPLITUDE_FLUSH_INTERVAL_MS'),
    flushMaxRetries: envInt('AMPLITUDE_FLUSH_MAX_RETRIES'),
    minIdLength: envInt('AMPLITUDE_MIN_ID_LENGTH'),
  };
  const contract = (process.env.AMPLITUDE_SENDER_CONTRACT ?? '').trim() || '1';
  const restart = envInt('AMPLITUDE_SENDER_RESTART') ?? 0;
  const graceMs = envInt('ADAPTER_BEACON_GRACE_MS') ?? 1000;
  const { budgetMs, desc: budgetDesc } = drainBudget();
  const state = stateDir();
  const profile = path.join(state.dir, 'chromium-profile');

  const page0 = await servePage(state.dir, driver);
  const legacy = argSdk === 'amplitude-js' && url ? await startLegacyStandIn(url) : null;
  const chromium = await startChromium(profile);
  chromiumChild = chromium.child;
  const browser = await puppeteer.connect({ browserWSEndpoint: chromium.ws, defaultViewport: null });
  const browserVersion = await browser.version();
  const settingsShown = Object.entries(settings)
    .map(([k, v]) => `${k}=${v === undefined ? '(SDK default)' : v}`).join(' ');
  // First field (up to the `;`): what the reports name as the sender's version.
  log(`${driver.pkg} ${sdkVersion} in Chromium ${browserVersion.replace(/^[^/]*\//, '')}; ` +
      `browser ${chromium.bin} (headless); contract=${contract} ` +
      `(adapter speaks ${CONTRACT}); restart=${restart}; serverUrl=${url || '(SDK default host)'} ` +
      `useBatch=${useBatch} ${settingsShown} ${budgetDesc}; page origin ${page0.origin}` +
      `${page0.reused ? ' (reused)' : ''}` +
      `${legacy ? `; legacy API stand-in http://${legacy.endpoint} -> ${url}` : ''}; profile ${profile}${state.kept ? '' : ' (temporary)'}; ` +
      `exit control = close the tab (pagehide), ${graceMs} ms grace`);

  const pending = new Map(); // seq -> true until its outcome line is printed
  let unknownResults = 0;
  const listPending = () => {
    const seqs = [...pending.keys()];
    return `${seqs.slice(0, 50).join(', ')}${seqs.length > 50 ? ` (+${seqs.length - 50} more)` : ''}`;
  };
  let settledWaiters = [];
  const onOutcome = (seq, code, message) => {
    if (seq === null || seq === undefined || !pending.has(seq)) {
      unknownResults += 1;
      log(`SDK result for an event this process did not track (seq ${seq}): code=${code} message=${message}`);
      return;
    }
    pending.delete(seq);
    if (code >= 200 && code < 300) emit({ seq, outcome: 'delivered' });
    else emit({ seq, outcome: 'dropped', reason: `${code} ${message}` });
    if (pending.size === 0) {
      for (const w of settledWaiters) w();
      settledWaiters = [];
    }
  };

  // Events of this process still in the SDK's localStorage queue at exit: `held` (the SDK
  // sends them on the next page load of this origin; a restart is one).
  const reportHeld = (stored, why) => {
    let held = 0;
    for (const seq of new Set(stored.seqs)) {
      if (!pending.has(seq)) continue;
      pending.delete(seq);
      held += 1;
      emit({ seq, outcome: 'held', reason: `in the SDK's localStorage queue ${why}` });
    }
    return held;
  };

  const [page] = await browser.pages();
  page.on('console', (m) => log(`page console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (err) => log(`page error: ${err?.message ?? err}`));
  page.on('requestfailed', (r) => log(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  await page.exposeFunction('__conformanceOutcome', onOutcome);
  await page.goto(`${page0.origin}/`, { waitUntil: 'load' });
  const init = await page.evaluate((o) => window.__driver.init(o), {
    apiKey: process.env.AMPLITUDE_API_KEY ?? '',
    url,
    legacyEndpoint: legacy?.endpoint,
    pagehideBeacon: process.env.ADAPTER_PAGEHIDE_BEACON === '1',
    useBatch,
    settings: Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)),
  });
  log(`SDK initialised in the page: ${init}`);

  let closing = false;
  const shutdown = async (code) => {
    closing = true;
    const gone = new Promise((resolve) => {
      if (chromium.child.exitCode !== null || chromium.child.signalCode !== null) resolve();
      else chromium.child.once('exit', resolve);
    });
    try {
      await browser.close();
    } catch {
      chromium.child.kill('SIGKILL');
    }
    await gone;
    page0.server.close();
    legacy?.server.close();
    if (!state.kept) {
      try {
        fs.rmSync(state.dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (err) {
        log(`could not remove the temporary profile ${state.dir}: ${err.message}`);
      }
    }
    process.exit(code);
  };

  let lines = 0;
  let skipped = 0;
  let controls = 0;
  let flushes = 0;
  let lineno = 0;
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  for await (const raw of rl) {
    lineno += 1;
    const text = raw.trim();
    if (!text) continue;
    lines += 1;
    let obj;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      skipped += 1;
      log(`stdin line ${lineno} skipped: ${err.message}: ${JSON.stringify(text.slice(0, 200))}`);
      continue;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      skipped += 1;
      log(`stdin line ${lineno} skipped: not a JSON object`);
      continue;
    }
    if (Object.hasOwn(obj, 'control')) {
      controls += 1;
      if (obj.control === 'flush') {
        flushes += 1;
        const t0 = Date.now();
        await page.evaluate(() => window.__driver.flush());
        log(`flush #${flushes} (stdin line ${lineno}): the SDK's flush resolved after ${Date.now() - t0} ms; ` +
            `${pending.size} events without a result${pending.size ? `: seq ${listPending()}` : ''}`);
        continue;
      }
      if (obj.control === 'exit') {
        // The user closes the tab: Chromium fires visibilitychange (hidden) and pagehide, the
        // SDK's own handlers run (sendBeacon), and the page is gone. The browser outlives the
        // tab briefly so requests it accepted from the page (beacons) leave.
        const t0 = Date.now();
        await page.close({ runBeforeUnload: false });
        await new Promise((resolve) => setTimeout(resolve, graceMs));
        // What the SDK left in localStorage, read from a fresh tab of the same origin
        // without the SDK.
        let stored = { count: 0, seqs: [] };
        try {
          const probe = await browser.newPage();
          await probe.goto(`${page0.origin}/probe`, { waitUntil: 'load' });
          stored = await probe.evaluate(readStoredQueue);
        } catch (err) {
          log(`could not read the SDK's storage after the tab closed: ${err.message}`);
        }
        const held = reportHeld(stored, 'when the tab was closed (sent on the next page load)');
        log(`exit (stdin line ${lineno}): tab closed; ${stored.count} events in the SDK's localStorage ` +
            `${graceMs} ms later (${held} reported held); ${pending.size} events never got a result` +
            `${pending.size ? `: seq ${listPending()}` : ''}; browser closed ${Date.now() - t0} ms after the line`);
        await shutdown(0);
        return;
      }
      log(`unsupported control line: ${text}`);
      continue;
    }
    const seq = seqOf(obj);
    if (seq !== null) pending.set(seq, true);
    await page.evaluate((ev, s) => window.__driver.track(ev, s), obj, seq);
  }

  log(`stdin closed after ${lines} lines (${lines - skipped - controls} tracked, ${controls} control, ` +
      `${skipped} skipped); flushing (budget ${budgetMs} ms)`);
  const started = Date.now();
  const deadline = started + Math.max(0, budgetMs);
  // Whatever hangs (a browser that does not close), the process is gone before the runner's
  // kill: the drain budget already keeps a margin of at least 2 s below it.
  setTimeout(() => {
    log(`still running ${budgetMs + 1000} ms after end of stdin: killing the browser, exiting 1`);
    chromiumChild?.kill('SIGKILL');
    process.exit(1);
  }, Math.max(0, budgetMs) + 1000).unref();
  const left = () => deadline - Date.now();
  const withDeadline = (p) => {
    let timer;
    const t = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, left()));
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  };
  // End of stdin is the contract's "flush everything": the SDK's flush, then every event's
  // result (the SDK's own retries included) and, after a restart, the events the SDK restored
  // from storage, which have no result to wait for: their stored queue must empty.
  let how = await withDeadline(page.evaluate(() => window.__driver.flush()).then(() => 'flushed'));
  log(`flush resolved after ${Date.now() - started} ms; ${pending.size} events without a result`);
  if (how !== 'timeout' && pending.size > 0) {
    how = await withDeadline(new Promise((resolve) => settledWaiters.push(() => resolve('settled'))));
  }
  let stored = { count: 0, seqs: [] };
  for (;;) {
    stored = await page.evaluate(readStoredQueue);
    if (!stored.count || left() <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, Math.max(0, left()))));
  }
  if (how === 'timeout' || pending.size > 0 || stored.count > 0) {
    const held = reportHeld(stored, `at the drain deadline (${budgetDesc})`);
    log(`${pending.size + held} events without a result and ${stored.count} in the SDK's localStorage after ` +
        `${Date.now() - started} ms (${budgetDesc}): ${held} reported held` +
        `${pending.size ? `; no result, not stored: seq ${listPending()}` : ''}; exiting 1`);
    await shutdown(1);
    return;
  }
  log(`all events settled after ${Date.now() - started} ms` +
      `${unknownResults ? ` (${unknownResults} results for events of an earlier start)` : ''}`);
  if (!closing) await shutdown(0);
}

main().catch((err) => {
  log(`fatal: ${err?.stack ?? err}`);
  chromiumChild?.kill('SIGKILL');
  process.exit(2);
});
