/** Options of {@link startAmplitudeMock}. */
export interface AmplitudeMockOptions {
  /** API keys of US projects (`--api-key`); none: any key is accepted. */
  apiKeys?: string[];
  /** The `--config` file: an object written as TOML, or TOML text (docs/fidelity.md), e.g. `{ limits: { eps_threshold_http_v2: 1 } }`. */
  config?: Record<string, unknown> | string;
  /** More command-line arguments (`amplitude-mock --help`). */
  args?: string[];
  /** Freeze the mock's clock at this many ms since the epoch; move it with `advanceClock`. */
  virtualClock?: number;
  /** Seed of the mock's random choices (probabilistic faults). */
  seed?: number;
  /** Faults scheduled at start (`--fault`), e.g. `{ kind: 'status', status: 503, count: 2 }` (docs/faults.md). */
  faults?: Fault[];
  /** The binary to run (default: {@link binaryPath}). */
  binary?: string;
  /** Extra environment variables of the mock, e.g. `{ RUST_LOG: 'debug' }`. */
  env?: Record<string, string>;
  /** `'inherit'`: also copy the mock's stderr (its logs) to this process's stderr. Always kept for `stderr()`. */
  stderr?: 'pipe' | 'inherit';
  /** How long to wait for the `listening on` line, ms (default 30 000). */
  startTimeoutMs?: number;
  /** How long each admin call may take, ms (default 30 000). */
  timeoutMs?: number;
}

/** A fault (docs/faults.md): `kind` and the fields of that kind. */
export interface Fault {
  kind: 'status' | 'html' | 'empty_400' | 'delay' | 'reset' | 'close' | 'truncate' | 'dribble' | 'hang' | 'throttle' | 'refuse';
  [field: string]: unknown;
}

/** `GET /__mock/stats`. */
export interface Stats {
  requests_by_status: Record<string, number>;
  requests_cut: number;
  events_received: number;
  events_stored: number;
  events_deduplicated: number;
  events_rejected: { total: number; by_reason: Record<string, number> };
  events_throttled: number;
  property_updates_applied: number;
  property_updates_dropped: number;
  property_updates_skipped: number;
  faults: Record<string, { injected: number; committed: number }>;
}

/** One stored event of `GET /__mock/events`. */
export interface StoredEvent {
  seq: number;
  request_id: number;
  project_id: number;
  server_upload_time: number;
  endpoint: string;
  event: Record<string, any>;
}

/** One request of `GET /__mock/requests`. */
export interface JournalEntry {
  id: number;
  at_ms: number;
  method: string;
  path: string;
  remote: string;
  api_key?: string | null;
  status: number;
  outcome: string;
  events: number;
  stored: number;
  deduplicated: number;
  body_bytes: number;
  response: string;
  fault?: string;
}

/** One record of `GET /__mock/duplicates`. */
export interface Duplicate {
  request_id: number;
  index: number;
  insert_id: string;
  duplicate_of: number | null;
  at_ms: number;
}

/** `GET /__mock/clock`. */
export interface ClockView {
  now_ms: number;
  virtual_time: boolean;
  offset_ms: number;
}

/** A running mock. Stop it with `stop()` (e.g. in `t.after`): a running child keeps the test process alive. */
export interface AmplitudeMock {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  url: string;
  /** The HTTP V2 endpoint: an SDK's `serverUrl`. */
  httpV2Url: string;
  /** The Batch endpoint. */
  batchUrl: string;
  pid: number | undefined;
  stats(): Promise<Stats>;
  events(filter?: { userId?: string; deviceId?: string; insertId?: string; apiKey?: string; limit?: number }): Promise<StoredEvent[]>;
  requests(limit?: number): Promise<JournalEntry[]>;
  duplicates(): Promise<Duplicate[]>;
  propertyDrops(): Promise<Record<string, unknown>[]>;
  user(query: { userId?: string; deviceId?: string }): Promise<Record<string, unknown>>;
  faults(): Promise<{ seed: number; faults: Record<string, unknown>[]; config_errors: unknown[] }>;
  /** `POST /__mock/faults`: schedules faults (all or none). */
  addFault(...faults: (Fault | Fault[])[]): Promise<{ scheduled: number[]; faults: Record<string, unknown>[] }>;
  clearFaults(): Promise<{ cleared: number }>;
  clock(): Promise<ClockView>;
  /** Moves the mock's time forward (EPS windows, daily quota, the 7-day dedup window). */
  advanceClock(ms: number): Promise<ClockView>;
  setClock(ms: number): Promise<ClockView>;
  silence(deviceIds: string[]): Promise<{ silenced: number }>;
  /** Forgets events, requests, counters, limiter windows, remembered insert_ids and users. */
  reset(): Promise<{ reset: true }>;
  /** What the mock wrote on stderr so far (its logs; the last MiB). */
  stderr(): string;
  /** SIGTERM (SIGKILL after `timeoutMs`), resolves with the exit code; rejects if the mock had died by itself. */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Starts the mock on 127.0.0.1 and a free port; resolves once it printed `listening on`. */
export function startAmplitudeMock(options?: AmplitudeMockOptions): Promise<AmplitudeMock>;
/** The binary: `$AMPLITUDE_MOCK_BINARY`, else the platform package's. */
export function binaryPath(): string;
/** A mock configuration as TOML. */
export function toToml(config: Record<string, unknown>): string;
export class AmplitudeMockError extends Error {}
