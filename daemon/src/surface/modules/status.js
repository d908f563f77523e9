// The show's status, polled: health, the model's process, outputs, the take; and the
// preview picture.

import { $, STATUS_EVERY_MS, act, api, askToken, cue, enc, log, post, token } from './api.js';
import { renderRundown, rundownShown } from './show.js';
import { loadModel, renderParamValues } from './steer.js';

// --- status: health, preview caption, outputs, take ----------------------------------

export let status = null;
let online = null;

export async function pollStatus() {
  try {
    status = await api('GET', '/api/v1/status');
    if (online !== true) {
      // Back after an outage: the old preview stream died with the connection, and the
      // daemon may have come back with another model.
      if (online === false) {
        restartPreview();
        loadModel();
      }
      online = true;
      setChip('h-link', 'ok', 'online');
    }
    renderStatus(status);
  } catch (e) {
    if (online !== false) {
      online = false;
      setChip('h-link', 'bad', 'offline');
      log('error', `status: ${e.message}`);
    }
  }
  setTimeout(pollStatus, STATUS_EVERY_MS);
}

function setChip(id, kind, text) {
  const el = $(id);
  el.classList.remove('ok', 'warn', 'bad');
  if (kind) el.classList.add(kind);
  if (text !== undefined) el.textContent = text;
}

export function fmt(v, digits) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–';
}

function renderStatus(s) {
  $('show-name').textContent = s.show ? `show ${s.show}` : '';
  $('model').textContent = `${s.model} on ${s.device} · ${s.width}×${s.height}`;
  $('h-frame').textContent = s.frame;
  const live = s.live || {};
  const rate = s.fps ? s.fps.num / s.fps.den : 0;
  $('h-fps').textContent = fmt(live.fps, 1);
  $('h-fps').parentElement.className = `chip ${live.fps === undefined ? '' : live.fps >= rate * 0.95 ? 'ok' : 'warn'}`;
  $('h-step').textContent = fmt(live.step_ms_mean, 1);
  $('h-repeated').textContent = s.frames_repeated;
  setChip('h-repeated-chip', live.repeated_last_second > 0 ? 'warn' : '');
  $('h-detail').hidden = !(s.detail < 1);
  $('h-detail-value').textContent = `${fmt(s.detail * 100, 0)} %`;
  $('h-stuck').hidden = s.step_running_s === undefined;
  $('h-stuck-s').textContent = `${fmt(s.step_running_s, 0)} s`;
  $('h-take').hidden = !s.take;
  $('h-take-name').textContent = s.take || '';
  renderProcess(s);
  // A config edit can bring another model: ask what it takes.
  if (modelSeen !== undefined && s.model !== modelSeen) loadModel();
  modelSeen = s.model;
  $('prompt-now').textContent = s.frozen ? `frozen · ${s.prompt}` : s.prompt;
  const c = s.camera;
  $('pose').textContent = `x ${fmt(c.pos[0], 1)} y ${fmt(c.pos[1], 1)} z ${fmt(c.pos[2], 1)} · yaw ${fmt(c.yaw, 1)}° pitch ${fmt(c.pitch, 1)}° · fov ${fmt(c.fov, 0)}°`;
  $('take-toggle').textContent = s.take ? 'Stop take' : 'Start take';
  $('take-toggle').classList.toggle('on', !!s.take);
  const cfg = s.config || {};
  const warn = [cfg.last_error && `Config edit refused: ${cfg.last_error}`,
    cfg.pending_restart && cfg.pending_restart.length && `Needs a restart to apply: ${cfg.pending_restart.join(', ')}`].filter(Boolean).join('\n');
  $('config-error').textContent = warn;
  $('config-error').hidden = !warn;
  renderParamValues(s.params);
  renderOutputs(s.outputs || []);
  renderAudio(s.audio || []);
  if (!rundownShown || JSON.stringify(s.rundown) !== rundownShown) renderRundown(s.rundown);
  if (s.auth && !token && !$('token-dialog').open && !askedOnce) {
    askedOnce = true;
    askToken('');
  }
}
let askedOnce = false;
let modelSeen;

// The model's own process (python models): its state, restarts, last exit and the last
// chunk's times; frames skipped for coming too late and drawn by the fallback.
function renderProcess(s) {
  const p = s.model_process;
  $('h-process').hidden = !p;
  $('h-process-ms').hidden = !p;
  if (p) {
    $('h-process-state').textContent = p.state;
    setChip('h-process', p.state === 'running' ? 'ok' : p.state === 'stopped' ? 'bad' : 'warn');
    const detail = [];
    if (p.restarts) detail.push(`${p.restarts} restart${p.restarts === 1 ? '' : 's'}`);
    const exit = describeExit(p.last_exit);
    if (exit) detail.push(`last exit: ${exit}`);
    $('h-process-detail').textContent = detail.map((d) => ` · ${d}`).join('');
    $('h-process').title = `the model's process${p.pid ? `, pid ${p.pid}` : ''}${p.python ? `, ${p.python}` : ''}`
      + `${p.up_s !== undefined ? `, up ${fmt(p.up_s, 0)} s` : ''}${p.saved_state_bytes ? `, saved state ${humanBytes(p.saved_state_bytes)}` : ''}`;
    $('h-process-step').textContent = fmt(p.last_step_ms, 1);
    $('h-process-transfer').textContent = fmt(p.last_transfer_ms, 1);
  }
  showCount($('h-skipped-chip'), $('h-skipped'), s.frames_skipped, !!p);
  showCount($('h-fallback-chip'), $('h-fallback'), s.fallback_frames, !!p);
}

function describeExit(x) {
  if (x === null || x === undefined) return '';
  return typeof x === 'string' ? x : JSON.stringify(x);
}

// A count since start: shown for a python model or once it is not 0; amber for a while
// after it grows.
const counts = new Map();
function showCount(chip, value, n, always) {
  chip.hidden = typeof n !== 'number' || (!always && n === 0);
  if (chip.hidden) return;
  const seen = counts.get(chip) || { n, at: 0 };
  if (n > seen.n) seen.at = Date.now();
  seen.n = n;
  counts.set(chip, seen);
  value.textContent = n;
  chip.classList.toggle('warn', Date.now() - seen.at < 2000);
}

// Keeps one element per item, so rows being clicked are not replaced under the pointer.
export function syncRows(tbody, items, key, create, update) {
  const keep = new Set(items.map(key));
  for (const row of [...tbody.children]) if (!keep.has(row.dataset.key)) row.remove();
  items.forEach((item, i) => {
    let row = [...tbody.children].find((r) => r.dataset.key === key(item));
    if (!row) {
      row = create(item);
      row.dataset.key = key(item);
    }
    if (tbody.children[i] !== row) tbody.insertBefore(row, tbody.children[i] || null);
    update(row, item);
  });
}

export function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

export function humanBytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

function renderOutputs(outputs) {
  syncRows($('outputs'), outputs, (o) => o.name, (o) => {
    const start = el('button', { type: 'button', textContent: 'Start' });
    const stop = el('button', { type: 'button', textContent: 'Stop' });
    start.addEventListener('click', () => act(`start ${o.name}`, () => post(`/api/v1/outputs/${enc(o.name)}/start`)));
    stop.addEventListener('click', () => act(`stop ${o.name}`, () => post(`/api/v1/outputs/${enc(o.name)}/stop`)));
    return el('tr', {},
      el('td', {}, el('b', { className: 'name' }), el('span', { className: 'detail target' })),
      el('td', {}, el('span', { className: 'state' }), el('span', { className: 'detail info' }), el('span', { className: 'detail error-text last-error' })),
      el('td', {}, start, ' ', stop));
  }, (row, o) => {
    row.querySelector('.name').textContent = o.name;
    row.querySelector('.target').textContent = `${o.type} ${o.target}${o.profile ? ` · ${o.profile}` : ''}`;
    const state = row.querySelector('.state');
    state.textContent = o.state;
    state.className = `state state-${o.state}`;
    const info = [humanBytes(o.bytes)];
    if (o.reconnects) info.push(`${o.reconnects} reconnects`);
    if (o.state === 'retrying' && o.retry_in_s != null) info.push(`attempt ${o.attempt}, next in ${fmt(o.retry_in_s, 0)} s`);
    if (o.file) info.push(o.file);
    row.querySelector('.info').textContent = info.join(' · ');
    row.querySelector('.last-error').textContent = o.last_error || '';
    row.dataset.state = o.state;
    const [start, stop] = row.querySelectorAll('button');
    stop.disabled = o.state === 'stopped';
    start.textContent = o.state === 'stopped' ? 'Start' : 'Restart';
  });
}

// The program's sound: a meter, the gain and a mute per source; each change is an
// `audio` cue, so it lands on a frame and is in the take's log like any other.
function renderAudio(sources) {
  $('audio-card').hidden = sources.length === 0;
  syncRows($('audio'), sources, (a) => a.name, (a) => {
    const quieter = el('button', { type: 'button', textContent: '−3 dB', title: 'Lower the gain by 3 dB' });
    const louder = el('button', { type: 'button', textContent: '+3 dB', title: 'Raise the gain by 3 dB' });
    const mute = el('button', { type: 'button', className: 'mute' });
    const gain = (step) => () => {
      const now = Number(quieter.closest('tr').dataset.gain);
      const to = Math.max(-60, Math.min(12, now + step));
      act(`gain ${a.name}`, () => cue({ type: 'audio', source: a.name, gain_db: to, ramp_s: 0.2 }));
    };
    quieter.addEventListener('click', gain(-3));
    louder.addEventListener('click', gain(3));
    mute.addEventListener('click', () => {
      const muted = mute.closest('tr').dataset.muted === 'true';
      act(`mute ${a.name}`, () => cue({ type: 'audio', source: a.name, mute: !muted }));
    });
    return el('tr', {},
      el('td', {}, el('b', { className: 'name' }), el('span', { className: 'detail gain' })),
      el('td', {}, el('meter', { className: 'level', min: -60, max: 0, low: -18, high: -6, optimum: -20 }),
        el('span', { className: 'detail level-text' })),
      el('td', {}, quieter, ' ', louder, ' ', mute));
  }, (row, a) => {
    row.querySelector('.name').textContent = a.name;
    row.querySelector('.gain').textContent = `${a.gain_db > 0 ? '+' : ''}${fmt(a.gain_db, 1)} dB${a.receiving ? '' : ' · no sound coming'}`;
    row.querySelector('.level').value = Math.max(-60, a.level_db);
    row.querySelector('.level-text').textContent = a.level_db <= -99 ? 'silent' : `${fmt(a.level_db, 0)} dBFS`;
    row.querySelector('.mute').textContent = a.muted ? 'Unmute' : 'Mute';
    row.querySelector('.mute').classList.toggle('on', a.muted);
    row.dataset.gain = a.gain_db;
    row.dataset.muted = a.muted;
  });
}

// --- preview -------------------------------------------------------------------------

const PREVIEW = '/api/v1/preview.mjpeg';
let previewRetry = null;

export function restartPreview() {
  clearTimeout(previewRetry);
  // A new URL makes the browser open a new stream rather than keep a dead one.
  $('preview').src = `${PREVIEW}?t=${Date.now()}`;
}

$('preview').addEventListener('load', () => {
  $('preview-off').hidden = true;
});
$('preview').addEventListener('error', async () => {
  let why = 'The preview stream stopped.';
  try {
    const outputs = await api('GET', '/api/v1/outputs');
    if (!outputs.some((o) => o.type === 'preview' && o.state !== 'stopped')) {
      why = 'No preview output is running (add one of type preview, or start it below).';
    }
  } catch (e) {
    why = `The daemon did not answer (${e.message}).`;
  }
  $('preview-off').textContent = `${why} Trying again…`;
  $('preview-off').hidden = false;
  clearTimeout(previewRetry);
  previewRetry = setTimeout(restartPreview, 3000);
});
