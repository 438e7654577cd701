// The amplitude-mock npm package driving the official Node SDK (@amplitude/analytics-node, the
// version of conformance/adapters/node-sdk/package.json).
//
// Run by mock-server/tests/packages.rs with `node --test`, from a fresh folder where only the
// two packed tarballs (amplitude-mock, @amplitude-mock/linux-x64) and the SDK are installed.
// The first test is quoted in README.md ("Use the mock in your CI"); keep it self-contained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from '@amplitude/analytics-node';
import { startAmplitudeMock } from 'amplitude-mock';

test('every tracked event is stored once', async (t) => {
  const mock = await startAmplitudeMock();
  t.after(() => mock.stop());

  const amplitude = createInstance();
  await amplitude.init('KEY', { serverUrl: mock.httpV2Url, flushIntervalMillis: 100 }).promise;
  const results = await Promise.all(
    [0, 1, 2].map((n) => amplitude.track('Song Played', { n }, { user_id: 'user-12345' }).promise),
  );
  assert.deepEqual(results.map((r) => r.code), [200, 200, 200]);

  const stored = (await mock.events()).map((e) => e.event);
  assert.deepEqual(stored.map((e) => [e.event_type, e.event_properties.n]), [
    ['Song Played', 0],
    ['Song Played', 1],
    ['Song Played', 2],
  ]);
  assert.equal((await mock.stats()).events_stored, 3);
});

// Runs `body(mock)` against a fresh mock; a failure carries the mock's stderr.
async function withMock(t, options, body) {
  const mock = await startAmplitudeMock(options);
  t.after(() => mock.stop());
  try {
    await body(mock);
  } catch (e) {
    e.message += `\n--- amplitude-mock stderr ---\n${mock.stderr()}`;
    throw e;
  }
}

test('the binary comes from the platform package', async () => {
  const { binaryPath } = await import('amplitude-mock');
  assert.equal(process.env.AMPLITUDE_MOCK_BINARY, undefined);
  assert.match(binaryPath(), /node_modules\/@amplitude-mock\/linux-x64\/bin\/amplitude-mock$/);
});

test('a retry after a committed 500 is deduplicated', (t) =>
  withMock(t, {}, async (mock) => {
    // The first upload is stored, then answered 500: the SDK retries the same events.
    await mock.addFault({ kind: 'status', status: 500, committed: true, count: 1 });
    const amplitude = createInstance();
    await amplitude.init('KEY', { serverUrl: mock.httpV2Url, flushIntervalMillis: 100 }).promise;
    const results = await Promise.all(
      [0, 1].map((n) => amplitude.track('Purchase', { n }, { user_id: 'user-12345' }).promise),
    );
    assert.deepEqual(results.map((r) => r.code), [200, 200]);

    const requests = await mock.requests();
    assert.deepEqual(requests.map((r) => [r.status, r.stored, r.deduplicated]), [
      [500, 2, 0],
      [200, 0, 2],
    ]);
    const stats = await mock.stats();
    assert.deepEqual([stats.events_stored, stats.events_deduplicated], [2, 2]);
    const stored = Object.fromEntries((await mock.events()).map((e) => [e.event.insert_id, e.seq]));
    const duplicates = Object.fromEntries((await mock.duplicates()).map((d) => [d.insert_id, d.duplicate_of]));
    assert.deepEqual(duplicates, stored);
    assert.deepEqual(Object.keys(stored).sort(), results.map((r) => r.event.insert_id).sort());
  }));

test('a lowered EPS limit answers 429; the window drains on the mock clock', (t) =>
  withMock(
    t,
    {
      apiKeys: ['KEY'],
      // 1 event/s per device over a 1 s window: the second request of a device is throttled.
      config: { limits: { eps_threshold_http_v2: 1, eps_window_ms: 1000 } },
      virtualClock: 1_700_000_000_000,
    },
    async (mock) => {
      const upload = (n) =>
        fetch(mock.httpV2Url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ api_key: 'KEY', events: [{ device_id: 'device-1', event_type: 'Tick', event_properties: { n } }] }),
        });
      assert.equal((await upload(0)).status, 200);
      assert.equal((await upload(1)).status, 200);
      const throttled = await upload(2);
      assert.equal(throttled.status, 429);
      assert.deepEqual(Object.keys((await throttled.json()).throttled_devices), ['device-1']);
      await mock.advanceClock(1_000);
      assert.equal((await upload(3)).status, 200);
      assert.equal((await mock.stats()).events_stored, 3);
      await mock.reset();
      assert.deepEqual(await mock.events(), []);
    },
  ));

test('a mock that cannot start rejects with its stderr', async () => {
  await assert.rejects(startAmplitudeMock({ args: ['--no-such-flag'] }), (e) => {
    assert.equal(e.name, 'AmplitudeMockError');
    assert.match(e.message, /exited before printing 'listening on'[\s\S]*--no-such-flag/);
    return true;
  });
});
