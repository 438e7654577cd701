'use strict';
// amplitude-mock for Node: starts the `amplitude-mock` binary on a free port, waits for its
// `listening on http://HOST:PORT` line and talks to its admin routes (/__mock/).
//
// The binary comes from the platform package (@amplitude-mock/<platform>-<arch>, an optional
// dependency: npm installs only the one matching the machine, the esbuild/Biome pattern), or
// from $AMPLITUDE_MOCK_BINARY.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const BINARY_ENV = 'AMPLITUDE_MOCK_BINARY';
// `${process.platform}-${process.arch}` -> the package carrying the binary.
const PLATFORM_PACKAGES = {
  'linux-x64': '@amplitude-mock/linux-x64',
};
const LISTENING = 'listening on ';
// Most stderr bytes kept in memory (the oldest are dropped first).
const STDERR_CAP = 1 << 20;

class AmplitudeMockError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AmplitudeMockError';
  }
}

/** The binary: $AMPLITUDE_MOCK_BINARY, else the platform package's. */
function binaryPath() {
  const override = process.env[BINARY_ENV];
  if (override) return override;
  const key = `${process.platform}-${process.arch}`;
  const pkg = PLATFORM_PACKAGES[key];
  if (!pkg) {
    throw new AmplitudeMockError(
      `amplitude-mock has no binary package for ${key} (only ${Object.keys(PLATFORM_PACKAGES).join(', ')}); ` +
        `build the binary (cargo build --release -p amplitude-mock) and set ${BINARY_ENV}`,
    );
  }
  const exe = process.platform === 'win32' ? 'amplitude-mock.exe' : 'amplitude-mock';
  try {
    return require.resolve(`${pkg}/bin/${exe}`);
  } catch (e) {
    throw new AmplitudeMockError(
      `the optional dependency ${pkg} is not installed (was npm run with --omit=optional or ` +
        `--no-optional?); install it, or set ${BINARY_ENV}: ${e.message}`,
    );
  }
}

function tomlValue(value) {
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`cannot write ${value} as a TOML value`);
    return String(value);
  }
  if (typeof value === 'bigint') return value.toString();
  // A JSON string is a valid TOML basic string.
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(', ')}]`;
  throw new TypeError(`cannot write ${typeof value} ${String(value)} as a TOML value`);
}

// A bare key when it can be one, else a quoted key.
const tomlKey = (key) => (/^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key));
const isTable = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isTableArray = (v) => Array.isArray(v) && v.length > 0 && v.every(isTable);

function tomlTable(out, pathParts, table, header) {
  if (header !== null) out.push(header);
  const nested = [];
  for (const [key, value] of Object.entries(table)) {
    if (value === undefined) continue;
    if (isTable(value) || isTableArray(value)) nested.push([key, value]);
    else out.push(`${tomlKey(key)} = ${tomlValue(value)}`);
  }
  for (const [key, value] of nested) {
    const sub = [...pathParts, tomlKey(key)];
    const name = sub.join('.');
    if (isTable(value)) tomlTable(out, sub, value, `[${name}]`);
    else for (const item of value) tomlTable(out, sub, item, `[[${name}]]`);
  }
}

/** Writes a mock configuration (`--config`: limits, profile, projects, faults, ledger) as TOML. */
function toToml(config) {
  const out = [];
  tomlTable(out, [], config, null);
  return `${out.join('\n')}\n`;
}

/**
 * Starts the mock on 127.0.0.1, port 0, and resolves once it printed `listening on`.
 * @param {import('./index').AmplitudeMockOptions} [options]
 * @returns {Promise<import('./index').AmplitudeMock>}
 */
async function startAmplitudeMock(options = {}) {
  const exe = options.binary ?? binaryPath();
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'amplitude-mock-'));
  const args = ['--bind', '127.0.0.1:0'];
  for (const key of options.apiKeys ?? []) args.push('--api-key', key);
  if (options.config !== undefined) {
    const file = path.join(workdir, 'mock.toml');
    fs.writeFileSync(file, typeof options.config === 'string' ? options.config : toToml(options.config));
    args.push('--config', file);
  }
  if (options.virtualClock !== undefined) args.push('--virtual-clock', String(options.virtualClock));
  if (options.seed !== undefined) args.push('--seed', String(options.seed));
  for (const fault of options.faults ?? []) args.push('--fault', JSON.stringify(fault));
  args.push(...(options.args ?? []));

  const child = spawn(exe, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(options.env ?? {}) },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    if (options.stderr === 'inherit') process.stderr.write(chunk);
    stderr += chunk;
    if (stderr.length > STDERR_CAP) stderr = stderr.slice(stderr.length - STDERR_CAP);
  });
  const exited = new Promise((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  // The mock must not outlive this process, whatever the test forgets.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const cleanup = () => {
    process.removeListener('exit', killOnExit);
    fs.rmSync(workdir, { recursive: true, force: true });
  };

  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  let url;
  try {
    url = await new Promise((resolve, reject) => {
      const lines = readline.createInterface({ input: child.stdout });
      const timer = setTimeout(
        () => reject(new AmplitudeMockError(`no 'listening on' line within ${startTimeoutMs} ms`)),
        startTimeoutMs,
      );
      const fail = (why) => {
        clearTimeout(timer);
        reject(new AmplitudeMockError(why));
      };
      child.once('error', (e) => fail(`cannot run ${exe}: ${e.message}`));
      lines.on('line', (line) => {
        if (line.startsWith(LISTENING)) {
          clearTimeout(timer);
          resolve(line.slice(LISTENING.length).trim());
        }
      });
      lines.once('close', () => fail(`${exe} exited before printing 'listening on'`));
    });
  } catch (e) {
    child.kill('SIGKILL');
    const { code, signal } = await exited;
    cleanup();
    e.message += ` (exit code ${code}, signal ${signal}); its stderr:\n${stderr}`;
    throw e;
  }

  const timeoutMs = options.timeoutMs ?? 30_000;
  async function call(method, route, body, query) {
    const target = new URL(route, url);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null) target.searchParams.set(k, String(v));
    }
    const init = { method, signal: AbortSignal.timeout(timeoutMs) };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'content-type': 'application/json' };
    }
    let response;
    try {
      response = await fetch(target, init);
    } catch (e) {
      throw new AmplitudeMockError(`${method} ${route}: ${e.message}; the mock's stderr:\n${stderr}`);
    }
    const text = await response.text();
    if (!response.ok) throw new AmplitudeMockError(`${method} ${route}: HTTP ${response.status}: ${text}`);
    return JSON.parse(text);
  }

  let stopping;
  const mock = {
    url,
    httpV2Url: `${url}/2/httpapi`,
    batchUrl: `${url}/batch`,
    pid: child.pid,
    stats: () => call('GET', '/__mock/stats'),
    events: (filter = {}) =>
      call('GET', '/__mock/events', undefined, {
        user_id: filter.userId,
        device_id: filter.deviceId,
        insert_id: filter.insertId,
        api_key: filter.apiKey,
        limit: filter.limit,
      }),
    requests: (limit) => call('GET', '/__mock/requests', undefined, { limit }),
    duplicates: () => call('GET', '/__mock/duplicates'),
    propertyDrops: () => call('GET', '/__mock/property_drops'),
    user: (query = {}) =>
      call('GET', '/__mock/users', undefined, { user_id: query.userId, device_id: query.deviceId }),
    faults: () => call('GET', '/__mock/faults'),
    addFault: (...faults) => {
      if (faults.length === 0) throw new TypeError('addFault: give a fault');
      return call('POST', '/__mock/faults', faults.flat());
    },
    clearFaults: () => call('DELETE', '/__mock/faults'),
    clock: () => call('GET', '/__mock/clock'),
    advanceClock: (ms) => call('POST', '/__mock/clock', { advance_ms: ms }),
    setClock: (ms) => call('POST', '/__mock/clock', { set_ms: ms }),
    silence: (deviceIds) => call('POST', '/__mock/silenced', { device_ids: deviceIds }),
    reset: () => call('POST', '/__mock/reset'),
    stderr: () => stderr,
    stop: (timeoutMs = 10_000) => {
      stopping ??= (async () => {
        const diedBefore = child.exitCode !== null || child.signalCode !== null;
        if (!diedBefore) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
          await exited;
          clearTimeout(timer);
        }
        const { code, signal } = await exited;
        cleanup();
        if (diedBefore) {
          throw new AmplitudeMockError(
            `the mock exited by itself (exit code ${code}, signal ${signal}); its stderr:\n${stderr}`,
          );
        }
        return code;
      })();
      return stopping;
    },
  };
  if (typeof Symbol.asyncDispose === 'symbol') mock[Symbol.asyncDispose] = () => mock.stop();
  return mock;
}

exports.startAmplitudeMock = startAmplitudeMock;
exports.binaryPath = binaryPath;
exports.toToml = toToml;
exports.AmplitudeMockError = AmplitudeMockError;
