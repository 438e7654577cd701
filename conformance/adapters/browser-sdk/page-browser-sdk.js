// Page driver for @amplitude/analytics-browser 2.x (its UMD bundle defines `window.amplitude`).
// The harness (adapter.mjs) calls window.__driver.* through page.evaluate; each event's result
// (the SDK's own Result of track(...).promise) goes back through the exposed binding
// window.__conformanceOutcome(seq, code, message).
(function () {
  'use strict';
  var amp = window.amplitude;
  window.__driver = {
    /** init(apiKey, undefined, options); resolves to a one-line description. */
    init: function (o) {
      var options = {
        serverUrl: o.url || undefined,
        useBatch: o.useBatch,
        transport: 'fetch',
        // Nothing but the application's own events: no page views, sessions, attribution,
        // form or file-download events, no remote configuration fetched from Amplitude.
        autocapture: false,
        fetchRemoteConfig: false,
        enableDiagnostics: false,
        logLevel: 2, // Warn
      };
      Object.keys(o.settings).forEach(function (k) {
        options[k] = o.settings[k];
      });
      var recipe = '';
      if (o.pagehideBeacon) {
        // The application recipe Amplitude documents for page exit (the SDK has no page-hide
        // handler of its own): switch to sendBeacon and flush when the page is hidden.
        window.addEventListener('pagehide', function () {
          amp.setTransport('beacon');
          amp.flush();
        });
        recipe = "; on pagehide: setTransport('beacon') + flush()";
      }
      return amp.init(o.apiKey, undefined, options).promise.then(function () {
        return 'amplitude.init(key, undefined, ' + JSON.stringify(options) + ')' + recipe;
      });
    },
    /** track(event): the event object as given; its result is reported, not awaited. */
    track: function (event, seq) {
      amp.track(event).promise.then(
        function (r) {
          window.__conformanceOutcome(seq, r && r.code, r && r.message);
        },
        function (err) {
          console.error('track() promise rejected for seq ' + seq + ': ' + err);
        }
      );
    },
    /** flush(): resolves when the SDK's flush promise does. */
    flush: function () {
      return amp.flush().promise.then(function () {
        return true;
      });
    },
  };
})();
