// Drives the official Amplitude Node SDK (@amplitude/analytics-node) through the
// conformance kit's third-party sender contract (docs/sender-contract.md).
//
// stdin:  JSON Lines, one Amplitude HTTP V2 event object a line, in application order, and
//         (contract 2) control lines: {"control":"flush"} -> `await flush().promise`, then the
//         next line; {"control":"exit"} -> process.exit(0) at once. End of stdin -> flush, then
//         wait for every track() promise, bounded by AMPLITUDE_DRAIN_DEADLINE_MS.
// stdout: JSON Lines {"seq":N,"outcome":"delivered"|"dropped","reason":"..."}, one per
//         settled track() promise. Nothing else is written to stdout.
// stderr: logs (settings used, skipped lines, SDK logs, events the SDK never settled).
//
// Only the SDK's public API is used, and nothing is retried or deduplicated here: every
// delivery decision is the SDK's own.

import { createRequire } from 'node:module';
import * as readline from 'node:readline';
import { init, track, flush } from '@amplitude/analytics-node';

const ADAPTER = 'node-sdk-adapter';
const SDK_VERSION = createRequire(import.meta.url)('@amplitude/analytics-node/package.json').version;
// The newest sender contract this adapter speaks (control lines, drain deadline).
const CONTRACT = 2;
// The SDK's server defaults (analytics-core config.js), printed when a setting is unset.
const SDK_DEFAULTS = { flushQueueSize: 200, flushIntervalMillis: 10000, flushMaxRetries: 12, minIdLength: 'server default 5' };

const log = (msg) => process.stderr.write(`[${ADAPTER}] ${msg}\n`);
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

// The SDK's default logger prints its Log/Debug levels with console.log, i.e. on stdout,
// which belongs to the outcome lines: send console.log to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

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

async function main() {
  const apiKey = process.env.AMPLITUDE_API_KEY ?? '';
  const useBatch = process.env.AMPLITUDE_USE_BATCH === '1';
  const url = (useBatch ? process.env.AMPLITUDE_BATCH_URL : process.env.AMPLITUDE_SERVER_URL) || undefined;

  const options = { useBatch };
  if (url !== undefined) options.serverUrl = url;
  const settings = {
    flushQueueSize: envInt('AMPLITUDE_FLUSH_QUEUE_SIZE'),
    flushIntervalMillis: envInt('AMPLITUDE_FLUSH_INTERVAL_MS'),
    flushMaxRetries: envInt('AMPLITUDE_FLUSH_MAX_RETRIES'),
    minIdLength: envInt('AMPLITUDE_MIN_ID_LENGTH'),
  };
  const shown = [];
  for (const [key, value] of Object.entries(settings)) {
    if (value !== undefined) {
      options[key] = value;
      shown.push(`${key}=${value}`);
    } else {
      shown.push(`${key}=${SDK_DEFAULTS[key]} (SDK default)`);
    }
  }
  if (settings.flushMaxRetries === 0 || settings.flushQueueSize === 0) {
    log('note: the SDK reads flushMaxRetries/flushQueueSize with `||`, so 0 means its default');
  }
  const contract = (process.env.AMPLITUDE_SENDER_CONTRACT ?? '').trim() || '1';
  const { budgetMs, desc: budgetDesc } = drainBudget();
  log(`@amplitude/analytics-node ${SDK_VERSION}; contract=${contract} (adapter speaks ${CONTRACT}); ` +
      `serverUrl=${url ?? '(SDK default host)'} useBatch=${useBatch} ` +
      `${shown.join(' ')} ${budgetDesc}; exit control = process.exit(0)`);
  if (contract !== '1' && contract !== String(CONTRACT)) {
    log(`AMPLITUDE_SENDER_CONTRACT=${JSON.stringify(contract)}: this adapter speaks contract ${CONTRACT}`);
  }
  if (!apiKey) log('AMPLITUDE_API_KEY is empty: the SDK will refuse to send');

  await init(apiKey, options).promise;

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
        // The application's `await flush().promise`: no further stdin line is handled until
        // the SDK's own flush resolves; nothing else is awaited (not the track() promises).
        flushes += 1;
        const t0 = Date.now();
        await flush().promise;
        log(`flush #${flushes} (stdin line ${lineno}): flush().promise resolved after ${Date.now() - t0} ms; ` +
            `${pending.size} track() promises still unsettled${pending.size ? `: seq ${listPending()}` : ''}`);
        continue;
      }
      if (obj.control === 'exit') {
        // The application exits now, right after its last flush returned: no drain, no
        // waiting for track() promises. Events the SDK still holds get no outcome line.
        log(`exit (stdin line ${lineno}): process.exit(0) after ${lines} lines (${controls} control); ` +
            `${pending.size} track() promises never settled${pending.size ? `: seq ${listPending()}` : ''}`);
        process.exit(0);
      }
      log(`unsupported control line: ${text}`);
      continue;
    }
    const seq = seqOf(obj);
    // Passed through as given: track(eventObject) copies every field onto the event.
    // The entry leaves `pending` in the same handler that prints the outcome line, so the
    // counts logged at a flush or exit line match the outcome lines printed so far.
    const key = {};
    const p = track(obj).promise.then(
      (result) => {
        pending.delete(key);
        const code = result?.code;
        if (seq === null) {
          log(`SDK result for an event without conformance_seq: code=${code} message=${result?.message}`);
        } else if (code >= 200 && code < 300) {
          emit({ seq, outcome: 'delivered' });
        } else {
          emit({ seq, outcome: 'dropped', reason: `${code} ${result?.message}` });
        }
      },
      (err) => {
        pending.delete(key);
        log(`track() promise rejected for seq ${seq}: ${err?.stack ?? err}`);
      },
    );
    pending.set(key, { seq, p });
  }

  log(`stdin closed after ${lines} lines (${lines - skipped - controls} tracked, ${controls} control, ` +
      `${skipped} skipped); flushing (budget ${budgetMs} ms)`);
  const started = Date.now();
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, budgetMs));
  });
  // End of stdin is the contract's "flush everything", so here (unlike the `flush` control)
  // the adapter also waits for the track() promises.
  // `await flush()` alone would not wait: flush() returns { promise }, not a thenable.
  // flush() sends each queued event once (no retry on error), but it skips its work when a
  // timer-driven flush is still in flight, and events already waiting out a retry delay
  // stay queued: like a Node program that simply lets its event loop drain, we then wait
  // for every track() promise to settle, bounded by the deadline.
  const drained = (async () => {
    await flush().promise;
    await new Promise((resolve) => setImmediate(resolve)); // let settled results be printed
    log(`flush() resolved after ${Date.now() - started} ms` +
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
  log(`all events settled after ${Date.now() - started} ms`);
  // The SDK may leave a flush timer armed; nothing is left to send, so exit now.
  process.exit(0);
}

main().catch((err) => {
  log(`fatal: ${err?.stack ?? err}`);
  process.exit(2);
});
