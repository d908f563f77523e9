// Running the show: start images, the rundown, markers, takes, checkpoints and exports.

import { $, ApiError, act, api, cue, enc, log, post, report } from './api.js';
import { describeCue } from './events.js';
import { el, fmt, humanBytes, status, syncRows } from './status.js';

// --- start images --------------------------------------------------------------------

// The upload types the daemon takes, with the file name endings each may have, and the
// names the cue language allows (the cue schema's pattern); a file named otherwise is
// named by the daemon.
const IMAGE_TYPES = { 'image/png': /\.png$/i, 'image/jpeg': /\.jpe?g$/i };
const IMAGE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\.(png|jpg|jpeg|PNG|JPG|JPEG)$/;
let mediaAsked = 0;

export async function refreshMedia() {
  const asked = ++mediaAsked;
  const list = await act('media', () => api('GET', '/api/v1/media'));
  if (!list || asked !== mediaAsked) return;
  syncRows($('media'), list, (m) => m.name, (m) => {
    const start = el('button', { type: 'button', textContent: 'Start from' });
    start.addEventListener('click', () => startFrom(m.name));
    return el('tr', {}, el('td', {}, el('b', { className: 'name' }), el('span', { className: 'detail info' })), el('td', {}, start));
  }, (row, m) => {
    row.querySelector('.name').textContent = m.name;
    row.querySelector('.info').textContent = humanBytes(m.bytes);
  });
  if (!list.length) $('media').replaceChildren(el('tr', {}, el('td', { className: 'dim', textContent: 'No images in the media folder yet.' })));
}

function startFrom(name) {
  return act(`image ${name}`, () => cue({ type: 'image', name }));
}

$('media-file').addEventListener('change', async () => {
  const file = $('media-file').files[0];
  $('media-file').value = '';
  if (!file) return;
  const what = `upload ${file.name}`;
  if (!Object.hasOwn(IMAGE_TYPES, file.type)) {
    report(what, new Error(`only PNG and JPEG images can be uploaded (this file is ${file.type || 'of no known type'})`));
    return;
  }
  const query = new URLSearchParams();
  if (IMAGE_NAME.test(file.name) && IMAGE_TYPES[file.type].test(file.name)) query.set('name', file.name);
  if ($('media-replace').checked) query.set('force', 'true');
  const q = query.toString();
  const saved = await act(what, async () => {
    try {
      return await post(`/api/v1/media${q ? `?${q}` : ''}`, file);
    } catch (e) {
      if (e.code !== 'exists') throw e;
      const called = query.has('name') ? `an image called ${file.name}` : 'this image';
      throw new ApiError(`the media folder already has ${called} (tick “replace” to overwrite it)`, e.status, e.code);
    }
  });
  if (!saved) return;
  log('info', `uploaded ${saved.name} (${saved.width}×${saved.height}, ${humanBytes(saved.bytes)})`);
  refreshMedia();
  await startFrom(saved.name);
});

// --- rundown -------------------------------------------------------------------------

export let rundownShown = null;

export function renderRundown(r) {
  if (!r) return;
  rundownShown = JSON.stringify(r);
  const list = $('rundown');
  list.replaceChildren(...r.items.map((item, i) => {
    const li = el('li', {}, item.name, el('span', { className: 'cues', textContent: item.cues.map(describeCue).join(' · ') }));
    if (i === r.current) li.classList.add('current');
    if (i === r.next) li.classList.add('next');
    return li;
  }));
  if (!r.items.length) list.replaceChildren(el('li', { className: 'dim', textContent: 'No rundown loaded.' }));
  $('go').disabled = r.next == null;
  $('back').disabled = r.current == null || r.current === 0;
}

export function go() {
  act('GO', async () => renderRundown(await post('/api/v1/rundown/go')));
}
export function back() {
  act('back', async () => renderRundown(await post('/api/v1/rundown/back')));
}
$('go').addEventListener('click', go);
$('back').addEventListener('click', back);

// --- markers, takes, checkpoints, exports --------------------------------------------

let markers = 0;
export function marker() {
  markers += 1;
  const label = `marker ${markers} at ${new Date().toLocaleTimeString([], { hour12: false })}`;
  act('marker', () => cue({ type: 'marker', label }));
}
$('marker').addEventListener('click', marker);

$('take-toggle').addEventListener('click', () => {
  if (status && status.take) act('stop take', () => post('/api/v1/takes/stop'));
  else act('start take', () => post('/api/v1/takes', {}));
});

$('checkpoint-save').addEventListener('click', () => act('save checkpoint', () => post('/api/v1/checkpoints', {})));

let takes = [];
export const exportJobs = new Map();

// Lists are asked for again on each event; only the newest question's answer counts, so
// a slow answer from before a change never paints over one from after it.
let takesAsked = 0;
let checkpointsAsked = 0;

export async function refreshTakes() {
  const asked = ++takesAsked;
  const t = await act('takes', () => api('GET', '/api/v1/takes'));
  if (t && asked === takesAsked) {
    takes = t;
    renderTakes();
  }
}

export function renderTakes() {
  syncRows($('takes'), takes, (t) => t.name, (t) => {
    const exp = el('button', { type: 'button', textContent: 'Export' });
    exp.addEventListener('click', () => act(`export ${t.name}`, async () => {
      const job = await post(`/api/v1/takes/${enc(t.name)}/export`, {});
      exportJobs.set(t.name, job);
      renderTakes();
    }));
    return el('tr', {},
      el('td', {}, el('b', { className: 'name' }), el('span', { className: 'detail info' }),
        el('progress', { hidden: true }), el('span', { className: 'detail job' })),
      el('td', {}, exp));
  }, (row, t) => {
    row.querySelector('.name').textContent = t.name;
    row.querySelector('.info').textContent = t.error ? t.error
      : t.recording ? 'recording…'
        : `${t.frames} frames · ${fmt(t.duration_s, 1)} s · ${t.markers} marker${t.markers === 1 ? '' : 's'}${t.lost_frames ? ` · ${t.lost_frames} lost` : ''}${t.complete === false ? ' · cut short' : ''}`;
    const job = exportJobs.get(t.name);
    const bar = row.querySelector('progress');
    bar.hidden = !job || job.state !== 'running';
    if (job) {
      bar.max = job.total || 1;
      bar.value = job.done;
      row.querySelector('.job').textContent = job.state === 'running' ? `export: ${job.stage} ${job.done}/${job.total}`
        : job.state === 'done' ? `exported → ${job.out}` : `export failed: ${job.error}`;
      row.querySelector('.job').classList.toggle('error-text', job.state === 'failed');
    }
    row.querySelector('button').disabled = !!t.recording || !!t.error || (job && job.state === 'running');
  });
  if (!takes.length) $('takes').replaceChildren(el('tr', {}, el('td', { className: 'dim', textContent: 'No takes yet.' })));
}

export async function refreshCheckpoints() {
  const asked = ++checkpointsAsked;
  const list = await act('checkpoints', () => api('GET', '/api/v1/checkpoints'));
  if (!list || asked !== checkpointsAsked) return;
  syncRows($('checkpoints'), list, (c) => c.name, (c) => {
    const restore = el('button', { type: 'button', textContent: 'Restore' });
    restore.addEventListener('click', () => act(`restore ${c.name}`, () => post(`/api/v1/checkpoints/${enc(c.name)}/restore`)));
    return el('tr', {}, el('td', {}, el('b', { textContent: c.name }), el('span', { className: 'detail info' })), el('td', {}, restore));
  }, (row, c) => {
    row.querySelector('.info').textContent = c.error ? c.error : `frame ${c.frame} · ${c.prompt ?? ''}`;
  });
  if (!list.length) $('checkpoints').replaceChildren(el('tr', {}, el('td', { className: 'dim', textContent: 'No checkpoints yet.' })));
}
