// The cuecast control surface.
//
// A producer's one screen. It holds no show state of its own: everything it shows is
// read from the public HTTP API (/api/v1/status polled a few times a second, the event
// stream for what happened), and everything it does is an API call, so what works here
// works from Companion, a script or curl too. An API error is shown on the page and in
// the event log; nothing is retried behind the producer's back.

import { act, api, log } from './surface/api.js';
import { followEvents, noteLatency } from './surface/events.js';
import { refreshCheckpoints, refreshTakes } from './surface/show.js';
import { pollStatus, restartPreview } from './surface/status.js';
import { loadModel, loadParams, loadScenes } from './surface/steer.js';

// --- start ---------------------------------------------------------------------------

async function start() {
  followEvents();
  restartPreview();
  loadModel();
  pollStatus();
  loadScenes();
  loadParams();
  refreshTakes();
  refreshCheckpoints();
  const recent = await act('cue log', () => api('GET', '/api/v1/cues/log'));
  if (recent) recent.slice(-20).forEach((c) => c.latency_ms !== undefined && noteLatency(c.latency_ms));
  log('info', 'control surface ready');
}

start();
