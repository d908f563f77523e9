// The event stream: what happened in the show, as log lines and the views it
// refreshes.

import { $, log } from './api.js';
import { exportJobs, marker, refreshCheckpoints, refreshMedia, refreshTakes, renderRundown, renderTakes } from './show.js';
import { fmt } from './status.js';
import { AXES } from './steer.js';

// --- the event log -------------------------------------------------------------------

export function describeCue(c) {
  if (!c || typeof c !== 'object') return 'cue';
  switch (c.type) {
    case 'prompt': return `prompt “${c.text}”`;
    case 'scene': return `scene ${c.name}`;
    case 'param': return `param ${c.name} = ${fmt(c.value, 2)}`;
    case 'marker': return `marker “${c.label}”`;
    case 'action': return `action ${AXES.filter((k) => c[k]).map((k) => `${k} ${fmt(c[k], 2)}`).join(', ') || 'stop'}`;
    case 'fade': return `fade to ${c.to}`;
    case 'seed': return `seed ${c.value}`;
    case 'input': return `input ${describeInput(c)}`;
    case 'image': return `image ${c.name}`;
    default: return c.type;
  }
}

function describeInput(c) {
  const said = [];
  if (Array.isArray(c.keys)) said.push(c.keys.length ? `keys ${c.keys.join(' ')}` : 'keys released');
  if (c.mouse) {
    const b = c.mouse.buttons;
    said.push(`mouse ${fmt(c.mouse.dx, 0)}, ${fmt(c.mouse.dy, 0)}${Array.isArray(b) ? ` buttons ${b.join(' ') || 'released'}` : ''}`);
  }
  return said.join(', ');
}

// Cue → frame latency, for the health bar.
const latencies = [];
export function noteLatency(ms) {
  latencies.push(ms);
  if (latencies.length > 20) latencies.shift();
  const sorted = [...latencies].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  $('h-latency').textContent = `${fmt(ms, 0)} ms (${fmt(median, 0)})`;
}

const outputsSaid = new Map();

const EVENTS = {
  cue_applied(e) {
    noteLatency(e.latency_ms);
    // An image may have been uploaded from elsewhere: the list follows.
    if (e.cue && e.cue.type === 'image' && !$('image-card').hidden) refreshMedia();
    if (e.cue && (e.cue.type === 'action' || e.cue.type === 'input')) return; // steering would drown the log
    log('cue', `${describeCue(e.cue)} → frame ${e.frame}, ${fmt(e.latency_ms, 0)} ms`);
  },
  output_state(e) {
    // A retrying output reports every attempt; the log takes what changed.
    const said = `${e.state} ${e.error}`;
    if (outputsSaid.get(e.output) === said) return;
    outputsSaid.set(e.output, said);
    const why = e.error && e.state !== 'live' ? ` (${e.error})` : '';
    log(e.state === 'failed' ? 'error' : e.state === 'retrying' ? 'warning' : 'info', `output ${e.output}: ${e.state}${why}`);
  },
  output_removed(e) {
    log('info', `output ${e.output} removed`);
  },
  config(e) {
    if (!e.ok) {
      log('error', `config edit refused: ${e.error}`);
      return;
    }
    const changed = Array.isArray(e.changed) && e.changed.length ? `: ${e.changed.join(', ')}` : '';
    log('info', `config applied${changed}`);
  },
  rundown(e) {
    if (e.fired !== undefined && e.rundown) log('info', `rundown: ${e.rundown.items[e.fired]?.name ?? e.fired}`);
    renderRundown(e.rundown);
  },
  take(e) {
    log('info', `take ${e.take} ${e.state}${e.frames !== undefined ? `, ${e.frames} frames` : ''}`);
    refreshTakes();
  },
  checkpoint(e) {
    log('info', e.saved ? `checkpoint ${e.saved} saved at frame ${e.frame}` : `checkpoint ${e.restored} restored`);
    refreshCheckpoints();
  },
  export(e) {
    const j = e.job;
    exportJobs.set(j.take, j);
    renderTakes();
    if (j.state === 'done') log('info', `export of ${j.take} done → ${j.out}`);
    if (j.state === 'failed') log('error', `export of ${j.take} failed: ${j.error}`);
  },
  warning(e) {
    log('warning', e.message || JSON.stringify(e));
  },
  error(e) {
    log('error', e.message || JSON.stringify(e));
  },
  lagged(e) {
    log('warning', `event stream: ${e.missed} events missed`);
  },
};

export function followEvents() {
  const source = new EventSource('/api/v1/events');
  for (const [type, handle] of Object.entries(EVENTS)) {
    source.addEventListener(type, (m) => {
      // `error` is also what EventSource fires when the connection drops (no data).
      if (!m.data) return;
      try {
        handle(JSON.parse(m.data));
      } catch (err) {
        console.error(err);
      }
    });
  }
}
