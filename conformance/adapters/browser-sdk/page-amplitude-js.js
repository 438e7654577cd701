// Page driver for amplitude-js 8.x (its UMD bundle defines `window.amplitude`). The harness
// (adapter.mjs) calls window.__driver.* through page.evaluate; each event's result (the SDK's
// own callback / error callback: HTTP status and response body) goes back through the exposed
// binding window.__conformanceOutcome(seq, code, message).
//
// amplitude-js 8.x posts to the legacy HTTP API (form body `client`, `e`, `v`, `upload_time`,
// `checksum`) at `apiEndpoint`; the harness points it at its legacy stand-in (see adapter.mjs).
// Per event, the public API has: setDeviceId / setUserId (instance state, set before each event
// as an application switching identities would), logEventWithTimestamp(type, properties, time,
// callback, errorCallback). It has no public way to set an event's insert_id (it gives each
// event a `uuid`) nor per-event user properties (only a separate $identify event).
(function () {
  'use strict';
  var amp = window.amplitude;
  var client = null;
  var failedAttempts = {};
  window.__driver = {
    init: function (o) {
      var options = {
        apiEndpoint: o.legacyEndpoint,
        forceHttps: false,
        batchEvents: true,
        saveEvents: true,
        includeUtm: false,
        includeReferrer: false,
        includeGclid: false,
        includeFbclid: false,
        logLevel: 'WARN',
        onError: function (e) {
          console.error('amplitude-js onError: ' + e);
        },
      };
      var s = o.settings;
      if (s.flushQueueSize !== undefined) options.eventUploadThreshold = s.flushQueueSize;
      if (s.flushIntervalMillis !== undefined) options.eventUploadPeriodMillis = s.flushIntervalMillis;
      client = amp.getInstance();
      return new Promise(function (resolve) {
        client.init(o.apiKey, null, options, function () {
          resolve('amplitude.getInstance().init(key, null, ' + JSON.stringify(options) + ')');
        });
      });
    },
    track: function (event, seq) {
      var report = function (status, body) {
        window.__conformanceOutcome(seq, status, typeof body === 'string' ? body : JSON.stringify(body));
      };
      if (event.device_id !== undefined) client.setDeviceId(event.device_id);
      client.setUserId(event.user_id === undefined ? null : event.user_id);
      if (event.user_properties !== undefined) {
        // amplitude-js sends user properties only as a separate $identify event (identify()),
        // which carries no conformance_seq and would be judged an unexpected event: left out.
        console.warn('seq ' + seq + ': user_properties left out (amplitude-js has no per-event user properties)');
      }
      // The callback fires when the SDK removes the event from its queue (sent with a 200, or
      // given up: a 413 at batch size 1, no API key); the error callback fires on every failed
      // attempt while the event stays queued, so it is only logged.
      client.logEventWithTimestamp(
        event.event_type,
        event.event_properties,
        event.time,
        function (status, body) {
          report(status, body);
        },
        function (status, body) {
          // Logged once per event: a stuck queue fires it for every queued event on every
          // attempt, and thousands of console messages would hold up the DevTools connection.
          failedAttempts[seq] = (failedAttempts[seq] || 0) + 1;
          if (failedAttempts[seq] === 1) {
            console.warn('amplitude-js error callback for seq ' + seq + ' (event stays queued; later ones not ' +
              'logged): ' + status + ' ' + String(body).slice(0, 120));
          }
        }
      );
    },
    // amplitude-js has no flush promise: sendEvents() starts an upload of what is queued;
    // this resolves when the SDK has nothing unsent (or after it stops sending).
    flush: function () {
      client.sendEvents();
      return new Promise(function (resolve) {
        var poll = function () {
          if (!client._sending || window.__driver.unsent() === 0) resolve(true);
          else setTimeout(poll, 20);
        };
        poll();
      });
    },
    /** Events in the SDK's memory queues (mirrored to localStorage when saveEvents is on). */
    /** How many failed attempts the error callbacks reported, over all events. */
    failedAttempts: function () {
      return Object.keys(failedAttempts).reduce(function (n, k) {
        return n + failedAttempts[k];
      }, 0);
    },
    unsent: function () {
      return (client._unsentEvents ? client._unsentEvents.length : 0) +
        (client._unsentIdentifys ? client._unsentIdentifys.length : 0);
    },
  };
})();
