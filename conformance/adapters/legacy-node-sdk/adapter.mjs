// Drives the deprecated Amplitude Node SDK (@amplitude/node 1.10.x) through the conformance
// kit's third-party sender contract (docs/sender-contract.md, version 3).
//
// stdin:  JSON Lines, one Amplitude HTTP V2 event object a line, in application order, and
//         control lines: {"control":"flush"} -> `await client.flush()`, then the next line;
//         {"control":"exit"} -> process.exit(0) at once. End of stdin -> `await client.flush()`,
//         then wait for every logEvent() promise, then let the event loop drain (the SDK's
//         background retries), all bounded by AMPLITUDE_DRAIN_DEADLINE_MS.
// stdout: JSON Lines {"seq":N,"outcome":"delivered"|"dropped","reason":"..."}, one per
//         settled logEvent() promise. Nothing else is written to stdout.
// stderr: logs (settings used, skipped lines, SDK logs, events the SDK never settled).
//
// Contract 3 (crash-restarts): the SDK keeps its queue in memory only and has no storage
// option, so AMPLITUDE_SENDER_STATE_DIR is only reported; after a restart
// (AMPLITUDE_SENDER_RESTART > 0) whatever the killed process held is gone. That is the SDK's
// behaviour, judged as such.
//
// Only the SDK's public API is used, and nothing is retried or deduplicated here: every
// delivery decision is the SDK's own.

import { createRequire } from 'node:module';
import * as readline from 'node:readline';

const require = createRequire(import.meta.url);
const Amplitude = require('@amplitude/node');

const ADAPTER = 'legacy-node-sdk-adapter';
const SDK_VERSION = require('@amplitude/node/package.json').version;
// The newest sender contract this adapter speaks (control lines, drain deadline, restarts).
const CONTRACT = 3;
// The SDK's defaults (constants.ts DEFAULT_OPTIONS), printed when a setting is unset.
const SDK_DEFAULTS = {
  maxCachedEvents: 16000,
  uploadIntervalInSec: '0 (flush on the next event-loop turn)',
  retryTimeouts: '[100,100,200,200,400,400,800,800,1600,1600,3200,3200]',
  minIdLength: 'server default 5',
};

const log = (msg) => process.stderr.write(`[${ADAPTER}] ${msg}\n`);
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

// Any console output of the SDK goes to stderr: stdout belongs to the outcome lines.
console.log = console.error;
console.info = console.error;
console.debug = console.error;
console.warn = console.error;

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

// How long the final flush plus the SDK's own pending retries may take after end of stdin:
// AMPLITUDE_DRAIN_DEADLINE_MS (contract 2) less a margin of min(200 ms, 10 %) so the process
// is gone before the runner's own deadline; else ADAPTER_SHUTDOWN_TIMEOUT_S (default 60).
const drainBudget = () => {
  const ms = envInt('AMPLITUDE_DRAIN_DEADLINE_MS');
  if (ms !== undefined && ms >= 0) {
    return { budgetMs: ms - Math.min(200, Math.floor(ms / 10)), desc: `drain_deadline_ms=${ms}` };
  }
  let secs = Number(process.env.ADAPTER_SHUTDOWN_TIMEOUT_S ?? '60');
  if (!Number.isFinite(secs)) {
    log(`ignoring ADAPTER_SHUTDOWN_TIMEOUT_S=${JSON.stringify(process.env.ADAPTER_SHUTDOWN_TIMEOUT_S)}: not a number`);
    secs = 60;
  }
  return { budgetMs: secs * 1000, desc: `shutdown_timeout_s=${secs} (no AMPLITUDE_DRAIN_DEADLINE_MS)` };
};

const seqOf = (event) => {
  const seq = event?.event_properties?.conformance_seq;
  return Number.isInteger(seq) ? seq : null;
};

// A Response is { status, statusCode, body? } (@amplitude/types); 'success' is the SDK's own
// notion of delivery.
const describe = (res) => {
  const body = res?.body ? ` ${JSON.stringify(res.body).slice(0, 300)}` : '';
  return `${res?.statusCode} ${res?.status}${body}`;
};

async function main() {
  const apiKey = process.env.AMPLITUDE_API_KEY ?? '';
  const useBatch = process.env.AMPLITUDE_USE_BATCH === '1';
  // The SDK has no batch switch: it posts its HTTP V2 body to serverUrl, which /batch accepts.
  const url = (useBatch ? process.env.AMPLITUDE_BATCH_URL : process.env.AMPLITUDE_SERVER_URL) || undefined;

  const options = {};
  if (url !== undefined) options.serverUrl = url;
  const shown = [];
  const queueSize = envInt('AMPLITUDE_FLUSH_QUEUE_SIZE');
  if (queueSize !== undefined) {
    options.maxCachedEvents = queueSize;
    shown.push(`maxCachedEvents=${queueSize} (AMPLITUDE_FLUSH_QUEUE_SIZE)`);
  } else {
    shown.push(`maxCachedEvents=${SDK_DEFAULTS.maxCachedEvents} (SDK default)`);
  }
  const intervalMs = envInt('AMPLITUDE_FLUSH_INTERVAL_MS');
  if (intervalMs !== undefined) {
    options.uploadIntervalInSec = intervalMs / 1000;
    shown.push(`uploadIntervalInSec=${intervalMs / 1000} (AMPLITUDE_FLUSH_INTERVAL_MS)`);
  } else {
    shown.push(`uploadIntervalInSec=${SDK_DEFAULTS.uploadIntervalInSec} (SDK default)`);
  }
  const retries = envInt('AMPLITUDE_FLUSH_MAX_RETRIES');
  if (retries !== undefined) {
    // The SDK has no retry count: one wait per retry, its default schedule cut or extended.
    const base = [100, 100, 200, 200, 400, 400, 800, 800, 1600, 1600, 3200, 3200];
    options.retryTimeouts = Array.from({ length: Math.max(0, retries) }, (_, i) => base[Math.min(i, base.length - 1)]);
    shown.push(`retryTimeouts=${JSON.stringify(options.retryTimeouts)} (AMPLITUDE_FLUSH_MAX_RETRIES=${retries})`);
  } else {
    shown.push(`retryTimeouts=${SDK_DEFAULTS.retryTimeouts} (SDK default)`);
  }
  const minId = envInt('AMPLITUDE_MIN_ID_LENGTH');
  if (minId !== undefined) {
    options.minIdLength = minId;
    shown.push(`minIdLength=${minId}`);
  } else {
    shown.push(`minIdLength=${SDK_DEFAULTS.minIdLength} (SDK default)`);
  }
  const contract = (process.env.AMPLITUDE_SENDER_CONTRACT ?? '').trim() || '1';
  const restart = (process.env.AMPLITUDE_SENDER_RESTART ?? '').trim() || '0';
  const stateDir = process.env.AMPLITUDE_SENDER_STATE_DIR ? 'given' : 'not given';
  const { budgetMs, desc: budgetDesc } = drainBudget();
  log(`@amplitude/node ${SDK_VERSION}; contract=${contract} (adapter speaks ${CONTRACT}); restart=${restart}; ` +
      `serverUrl=${url ?? '(SDK default host)'} useBatch=${useBatch} ` +
      `${shown.join(' ')} ${budgetDesc}; exit control = process.exit(0); ` +
      `AMPLITUDE_SENDER_STATE_DIR ${stateDir}, unused (the SDK keeps its queue in memory only)`);
  if (contract !== '1' && contract !== '2' && contract !== String(CONTRACT)) {
    log(`AMPLITUDE_SENDER_CONTRACT=${JSON.stringify(contract)}: this adapter speaks contract ${CONTRACT}`);
  }
  if (!apiKey) log('AMPLITUDE_API_KEY is empty: the SDK will refuse to send');

  const client = Amplitude.init(apiKey, options);

  const pending = new Map(); // key -> { seq, p }, until the outcome is printed
  const listPending = () => {
    const seqs = [...pending.values()].map((e) => e.seq);
    return `${seqs.slice(0, 50).join(', ')}${seqs.length > 50 ? ` (+${seqs.length - 50} more)` : ''}`;
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
        // The application's `await client.flush()`: no further stdin line is handled until it
        // resolves; nothing else is awaited (not the logEvent() promises).
        flushes += 1;
        const t0 = Date.now();
        const res = await client.flush();
        log(`flush #${flushes} (stdin line ${lineno}): client.flush() resolved after ${Date.now() - t0} ms ` +
            `(${describe(res)}); ${pending.size} logEvent() promises still unsettled${pending.size ? `: seq ${listPending()}` : ''}`);
        continue;
      }
      if (obj.control === 'exit') {
        log(`exit (stdin line ${lineno}): process.exit(0) after ${lines} lines (${controls} control); ` +
            `${pending.size} logEvent() promises never settled${pending.size ? `: seq ${listPending()}` : ''}`);
        process.exit(0);
      }
      log(`unsupported control line: ${text}`);
      continue;
    }
    const seq = seqOf(obj);
    // Passed through as given: logEvent(event) sends the object's fields as they are.
    const key = {};
    let sent;
    try {
      sent = client.logEvent(obj);
    } catch (err) {
      sent = Promise.reject(err);
    }
    const p = Promise.resolve(sent)
      .then(
        (res) => {
          pending.delete(key);
          if (seq === null) {
            log(`SDK result for an event without conformance_seq: ${describe(res)}`);
          } else if (res?.status === 'success') {
            emit({ seq, outcome: 'delivered' });
          } else {
            emit({ seq, outcome: 'dropped', reason: describe(res) });
          }
        },
        (err) => {
          pending.delete(key);
          log(`logEvent() promise rejected for seq ${seq}: ${err?.stack ?? err}`);
        },
      );
    pending.set(key, { seq, p });
  }

  log(`stdin closed after ${lines} lines (${lines - skipped - controls} logged, ${controls} control, ` +
      `${skipped} skipped); flushing (budget ${budgetMs} ms)`);
  const started = Date.now();
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, budgetMs));
  });
  // End of stdin is the contract's "flush everything": flush, then wait for every
  // logEvent() promise (retries included), bounded by the deadline.
  const drained = (async () => {
    const res = await client.flush();
    await new Promise((resolve) => setImmediate(resolve)); // let settled results be printed
    log(`client.flush() resolved after ${Date.now() - started} ms (${describe(res)})` +
        (pending.size ? `; waiting for ${pending.size} events the SDK still holds` : ''));
    while (pending.size > 0) {
      await Promise.allSettled([...pending.values()].map((e) => e.p));
    }
    return 'drained';
  })();
  const how = await Promise.race([drained, deadline]);
  clearTimeout(timer);
  if (how === 'timeout') {
    log(`${pending.size} events not settled by the SDK within ${budgetMs} ms (${budgetDesc}): seq ` +
        `${listPending()}; exiting 1`);
    process.exit(1);
  }
  // logEvent() resolves with the FIRST attempt's response; what failed (5xx, 429, timeout) is
  // retried afterwards in the background (retryTimeouts), with no further result per event.
  // A Node program that ends by letting its event loop drain gives those retries their time:
  // so does the adapter, bounded by what is left of the drain budget.
  const left = Math.max(0, budgetMs - (Date.now() - started));
  log(`all logEvent() promises settled after ${Date.now() - started} ms; letting the event loop drain ` +
      `(the SDK's background retries), at most ${left} ms`);
  const watchdog = setTimeout(() => {
    log(`the event loop was still busy (SDK retries) at the drain deadline (${budgetDesc}); exiting 1`);
    process.exit(1);
  }, left);
  watchdog.unref();
  process.exitCode = 0;
}

main().catch((err) => {
  log(`fatal: ${err?.stack ?? err}`);
  process.exit(2);
});
