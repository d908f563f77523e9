// The cuecast control surface.
//
// A producer's one screen. It holds no show state of its own: everything it shows is
// read from the public HTTP API (/api/v1/status polled a few times a second, the event
// stream for what happened), and everything it does is an API call, so what works here
// works from Companion, a script or curl too. An API error is shown on the page and in
// the event log; nothing is retried behind the producer's back.

const $ = (id) => document.getElementById(id);
const STATUS_EVERY_MS = 250;
const LOG_LINES = 200;

// --- the API -------------------------------------------------------------------------

let token = sessionStorage.getItem('cuecast-token');

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * One API call. Resolves to the parsed answer; rejects with the API's own words (and
 * its error code, e.g. `exists`). A body is sent as JSON, except a file (a Blob), which
 * is sent as itself with its own type.
 */
async function api(method, path, body, bearer = token) {
  const headers = {};
  const file = body instanceof Blob;
  if (body !== undefined) headers['content-type'] = file ? body.type : 'application/json';
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined || file ? body : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(`the daemon did not answer (${e.message})`, 0);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const code = data && typeof data.error === 'string' ? data.error : undefined;
    const detail = data && data.detail ? data.detail + (data.field ? ` (field ${data.field})` : '')
      : code ? `${code} (HTTP ${res.status})` : `HTTP ${res.status}`;
    throw new ApiError(detail, res.status, code);
  }
  return data;
}

/** Runs an action; an error is shown (banner and log), and asks for the token on 401. */
async function act(what, fn) {
  try {
    return await fn();
  } catch (e) {
    report(what, e);
    return undefined;
  }
}

function report(what, e) {
  const msg = `${what}: ${e.message}`;
  $('error-text').textContent = msg;
  $('error').hidden = false;
  log('error', msg);
  if (e.status === 401) askToken(e.message);
}

$('error-close').addEventListener('click', () => {
  $('error').hidden = true;
});

const post = (path, body) => api('POST', path, body);
const cue = (c) => post('/api/v1/cues', c);
const enc = encodeURIComponent;

// --- the token -----------------------------------------------------------------------

function askToken(why) {
  const d = $('token-dialog');
  $('token-error').textContent = why || '';
  $('token-error').hidden = !why;
  if (!d.open) d.showModal();
  $('token').focus();
}

$('token-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const candidate = $('token').value;
  try {
    await api('POST', '/api/v1/auth', undefined, candidate);
  } catch (err) {
    $('token-error').textContent = err.status === 401 ? `The token was refused: ${err.message}` : err.message;
    $('token-error').hidden = false;
    $('token').select();
    return;
  }
  token = candidate;
  sessionStorage.setItem('cuecast-token', token);
  $('token').value = '';
  $('token-dialog').close();
  $('error').hidden = true;
  log('info', 'token accepted');
});

// --- the event log -------------------------------------------------------------------

function log(kind, text) {
  const li = document.createElement('li');
  li.className = kind;
  const t = document.createElement('time');
  t.textContent = new Date().toLocaleTimeString([], { hour12: false });
  li.append(t, text);
  const list = $('log');
  list.prepend(li);
  while (list.children.length > LOG_LINES) list.lastChild.remove();
}

function describeCue(c) {
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
function noteLatency(ms) {
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

function followEvents() {
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

// --- status: health, preview caption, outputs, take ----------------------------------

let status = null;
let online = null;

async function pollStatus() {
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

function fmt(v, digits) {
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
function syncRows(tbody, items, key, create, update) {
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

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

function humanBytes(n) {
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

// --- preview -------------------------------------------------------------------------

const PREVIEW = '/api/v1/preview.mjpeg';
let previewRetry = null;

function restartPreview() {
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

// --- prompt and scenes ---------------------------------------------------------------

$('prompt-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text) return;
  const transition = Number($('transition').value);
  act('prompt', async () => {
    await cue({ type: 'prompt', text, transition_s: Number.isFinite(transition) ? transition : 1 });
    $('prompt').value = '';
  });
});

async function loadScenes() {
  const scenes = await act('scenes', () => api('GET', '/api/v1/scenes'));
  if (!scenes) return;
  $('scenes').replaceChildren(...scenes.map((s) => {
    const b = el('button', { type: 'button', textContent: s.name, title: s.prompt || '' });
    b.addEventListener('click', () => act(`scene ${s.name}`, () =>
      post(`/api/v1/scenes/${enc(s.name)}`, { transition: 'fade', transition_s: Number($('transition').value) || 1 })));
    return b;
  }));
  if (!scenes.length) $('scenes').textContent = 'The show preset has no scenes.';
}

// --- params --------------------------------------------------------------------------

/** Sends the latest value given to it, one request at a time (drops the ones between). */
function latestOnly(what, send) {
  let busy = false;
  let next;
  let has = false;
  return async (value) => {
    next = value;
    has = true;
    if (busy) return;
    busy = true;
    while (has) {
      const v = next;
      has = false;
      try {
        await send(v);
      } catch (e) {
        report(what, e);
      }
    }
    busy = false;
  };
}

const sliders = new Map();

async function loadParams() {
  const params = await act('params', () => api('GET', '/api/v1/params'));
  if (!params) return;
  $('params').replaceChildren(...params.map((p) => {
    const id = `param-${p.name}`;
    const input = el('input', { type: 'range', id, min: p.min, max: p.max, step: (p.max - p.min) / 200, value: p.value });
    input.dataset.param = p.name;
    const out = el('output', { htmlFor: id, textContent: fmt(p.value, 2) });
    const send = latestOnly(`param ${p.name}`, (value) => post(`/api/v1/params/${enc(p.name)}`, { value, ramp_s: 0.15 }));
    input.addEventListener('input', () => {
      out.textContent = fmt(Number(input.value), 2);
      send(Number(input.value));
    });
    input.addEventListener('dblclick', () => {
      input.value = p.default;
      out.textContent = fmt(p.default, 2);
      send(p.default);
    });
    sliders.set(p.name, { input, out, busyUntil: 0 });
    input.addEventListener('pointerdown', () => { sliders.get(p.name).busyUntil = Infinity; });
    input.addEventListener('pointerup', () => { sliders.get(p.name).busyUntil = Date.now() + 1000; });
    input.addEventListener('change', () => { sliders.get(p.name).busyUntil = Date.now() + 1000; });
    return el('div', { className: 'param', title: `${p.description ? `${p.description}; ` : ''}${p.min} to ${p.max}, default ${p.default} (double-click resets)` },
      el('label', { htmlFor: id, textContent: p.name }), input, out);
  }));
  if (!params.length) $('params').textContent = 'This model has no params.';
}

function renderParamValues(values) {
  for (const [name, s] of sliders) {
    const v = values[name];
    // Leave a slider alone while it is being moved (and a moment after, while the
    // ramp catches up) or has the keyboard.
    if (v === undefined || Date.now() < s.busyUntil || document.activeElement === s.input) continue;
    s.input.value = v;
    s.out.textContent = fmt(v, 2);
  }
}

// --- camera: keys, joystick, gamepad -------------------------------------------------

const AXES = ['forward', 'strafe', 'rise', 'yaw', 'pitch'];
// Yaw turns left when positive; strafe goes right.
const MOVES = {
  KeyW: ['forward', 1], KeyS: ['forward', -1], KeyA: ['strafe', -1], KeyD: ['strafe', 1],
  KeyR: ['rise', 1], KeyF: ['rise', -1],
  ArrowLeft: ['yaw', 1], ArrowRight: ['yaw', -1], ArrowUp: ['pitch', 1], ArrowDown: ['pitch', -1],
};
const heldKeys = new Set();
let slow = false;
const stick = { x: 0, y: 0 };
const pad = { forward: 0, strafe: 0, yaw: 0, pitch: 0 };

function wantedAction() {
  const a = Object.fromEntries(AXES.map((k) => [k, 0]));
  const scale = slow ? 0.5 : 1;
  for (const code of heldKeys) a[MOVES[code][0]] += MOVES[code][1] * scale;
  a.forward += -stick.y;
  a.yaw += -stick.x;
  for (const k of Object.keys(pad)) a[k] += pad[k];
  for (const k of AXES) a[k] = Math.round(Math.max(-1, Math.min(1, a[k])) * 100) / 100;
  return a;
}

let sentAction = JSON.stringify(wantedAction());
const sendAction = latestOnly('camera', async (a) => {
  const key = JSON.stringify(a);
  if (key === sentAction) return;
  sentAction = key;
  await cue({ type: 'action', ...a });
});

function steer() {
  const a = wantedAction();
  $('action').textContent = AXES.filter((k) => a[k]).map((k) => `${k} ${a[k]}`).join(' · ') || 'still';
  sendAction(a);
}

/** True when a key belongs to a field: shortcuts never fire while typing. */
function inField(e) {
  const t = e.target;
  return t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement
    || (t instanceof HTMLElement && t.isContentEditable) || $('token-dialog').open;
}

window.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && inField(e) && !$('token-dialog').open) {
    e.target.blur();
    return;
  }
  if (!inField(e) && playKey(e, true)) return;
  if (inField(e) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === 'Shift') {
    slow = true;
    steer();
    return;
  }
  if (MOVES[e.code]) {
    e.preventDefault();
    if (!e.repeat) {
      heldKeys.add(e.code);
      slow = e.shiftKey;
      steer();
    }
    return;
  }
  if (e.repeat) return;
  switch (e.code) {
    case 'Space': e.preventDefault(); go(); break;
    case 'KeyB': back(); break;
    case 'KeyM': marker(); break;
    case 'Slash': e.preventDefault(); $('prompt').focus(); break;
    default:
  }
});

window.addEventListener('keyup', (e) => {
  if (playKey(e, false)) return;
  if (e.key === 'Shift') {
    slow = false;
    steer();
  }
  if (heldKeys.delete(e.code)) steer();
  // A focused button would also take the space bar as a click.
  if (e.code === 'Space' && e.target instanceof HTMLButtonElement) e.preventDefault();
});

// Keys released while the window was not looking never send keyup: stop then.
window.addEventListener('blur', () => {
  if (heldKeys.size) {
    heldKeys.clear();
    steer();
  }
});

$('stop-camera').addEventListener('click', () => {
  heldKeys.clear();
  stick.x = stick.y = 0;
  sentAction = null;
  steer();
});

const joystick = $('joystick');
const knob = joystick.querySelector('.knob');
function moveStick(e) {
  const r = joystick.getBoundingClientRect();
  const radius = r.width / 2;
  let x = (e.clientX - r.left - radius) / radius;
  let y = (e.clientY - r.top - radius) / radius;
  const len = Math.hypot(x, y);
  if (len > 1) {
    x /= len;
    y /= len;
  }
  stick.x = Math.abs(x) < 0.08 ? 0 : x;
  stick.y = Math.abs(y) < 0.08 ? 0 : y;
  knob.style.transform = `translate(${x * radius * 0.7}px, ${y * radius * 0.7}px)`;
  steer();
}
joystick.addEventListener('pointerdown', (e) => {
  joystick.setPointerCapture(e.pointerId);
  joystick.classList.add('active');
  moveStick(e);
});
joystick.addEventListener('pointermove', (e) => {
  if (joystick.hasPointerCapture(e.pointerId)) moveStick(e);
});
for (const type of ['pointerup', 'pointercancel']) {
  joystick.addEventListener(type, () => {
    joystick.classList.remove('active');
    stick.x = stick.y = 0;
    knob.style.transform = '';
    steer();
  });
}

// Gamepads are only visible by polling; poll while one is connected.
const padButtons = [];
function pollGamepad() {
  const gp = [...(navigator.getGamepads ? navigator.getGamepads() : [])].find(Boolean);
  if (!gp) {
    $('gamepad').textContent = 'no gamepad';
    Object.keys(pad).forEach((k) => { pad[k] = 0; });
    steer();
    return;
  }
  $('gamepad').textContent = `gamepad: ${gp.id.slice(0, 40)}`;
  const axis = (i) => {
    const v = gp.axes[i] || 0;
    return Math.abs(v) < 0.15 ? 0 : Math.round(v * 20) / 20;
  };
  pad.strafe = axis(0);
  pad.forward = -axis(1);
  pad.yaw = -axis(2);
  pad.pitch = -axis(3);
  steer();
  // A: GO, B: back, Y: marker, on the press only.
  [[0, go], [1, back], [3, marker]].forEach(([i, fn]) => {
    const pressed = !!(gp.buttons[i] && gp.buttons[i].pressed);
    if (pressed && !padButtons[i]) fn();
    padButtons[i] = pressed;
  });
  requestAnimationFrame(pollGamepad);
}
window.addEventListener('gamepadconnected', () => requestAnimationFrame(pollGamepad));

// --- play: the model's own keys and mouse --------------------------------------------

// A model trained on a game's controls takes the keys held and the pointer's movement
// (input cues) rather than the camera's axes. A click on the picture locks the pointer
// to it; while it is locked the model's keys and the mouse go to the model and the
// page's own keys are off. Esc (or leaving the window) ends it and releases whatever
// was held, so nothing stays down on air.
const MOUSE_EVERY_MS = 50;
const MAX_MOUSE_PX = 10000;
// MouseEvent.button 0, 1 and 2.
const BUTTONS = ['left', 'middle', 'right'];
let playKeys = [];
let playMouse = false;
let playOn = false;
const playHeld = new Set();
const buttonsHeld = new Set();
const moved = { dx: 0, dy: 0 };
let buttonsChanged = false;
let mouseSentAt = 0;
let mouseTimer = null;
let mouseBusy = false;

const playable = () => playKeys.length > 0 || playMouse;
const playing = () => document.pointerLockElement === $('preview');

// Input cues go one at a time, in order: each says what is held from then on, so none
// may overtake the one before.
let inputQueue = Promise.resolve();
function sendInput(send) {
  inputQueue = inputQueue.then(send).catch((e) => report('play', e));
}

function sendKeys() {
  const keys = playKeys.filter((k) => playHeld.has(k));
  showPlay();
  sendInput(() => cue({ type: 'input', keys }));
}

const px = (v) => Math.round(Math.max(-MAX_MOUSE_PX, Math.min(MAX_MOUSE_PX, v)) * 100) / 100;

/** Sends the movement summed since the last message, and the buttons if they changed. */
function flushMouse() {
  clearTimeout(mouseTimer);
  mouseTimer = null;
  if (mouseBusy) {
    mouseSoon();
    return;
  }
  const dx = px(moved.dx);
  const dy = px(moved.dy);
  if (!dx && !dy && !buttonsChanged) return;
  moved.dx = 0;
  moved.dy = 0;
  const mouse = { dx, dy };
  if (buttonsChanged) mouse.buttons = BUTTONS.filter((b) => buttonsHeld.has(b));
  buttonsChanged = false;
  mouseSentAt = performance.now();
  mouseBusy = true;
  sendInput(async () => {
    try {
      await cue({ type: 'input', mouse });
    } finally {
      mouseBusy = false;
    }
  });
}

/** Movement waits until MOUSE_EVERY_MS after the last message. */
function mouseSoon() {
  if (mouseTimer !== null) return;
  mouseTimer = setTimeout(flushMouse, Math.max(0, mouseSentAt + MOUSE_EVERY_MS - performance.now()));
}

function showPlay() {
  $('play-state').textContent = playOn ? 'playing' : 'not playing';
  $('play-state').classList.toggle('on', playOn);
  const held = [...playKeys.filter((k) => playHeld.has(k)), ...BUTTONS.filter((b) => buttonsHeld.has(b)).map((b) => `${b} button`)];
  $('play-held').textContent = playOn ? `held: ${held.join(' ') || 'nothing'}` : '';
  $('preview-box').classList.toggle('playing', playOn);
}

function startPlaying() {
  if (playOn) return;
  playOn = true;
  // The camera's keys let go: what they held stops.
  slow = false;
  if (heldKeys.size) {
    heldKeys.clear();
    steer();
  }
  showPlay();
}

/** Ends play mode; `release` sends that nothing is held any more (not for another model). */
function stopPlaying(release = true) {
  if (!playOn) return;
  playOn = false;
  playHeld.clear();
  if (release) {
    if (buttonsHeld.size) buttonsChanged = true;
    buttonsHeld.clear();
    if (playKeys.length) sendKeys();
    if (playMouse) flushMouse();
  } else {
    buttonsHeld.clear();
    buttonsChanged = false;
    moved.dx = 0;
    moved.dy = 0;
  }
  showPlay();
}

/** Play mode's share of the keyboard: true when it took the key (nothing else may). */
function playKey(e, down) {
  if (!playOn) return false;
  // The browser takes Esc to unlock the pointer itself; the page does too, in case a
  // browser leaves it to the page.
  if (e.code === 'Escape') {
    if (down) document.exitPointerLock();
    return true;
  }
  if (!playKeys.includes(e.code)) return true;
  e.preventDefault();
  if (e.repeat || playHeld.has(e.code) === down) return true;
  if (down) playHeld.add(e.code);
  else playHeld.delete(e.code);
  sendKeys();
  return true;
}

$('preview-box').addEventListener('click', () => {
  if (!playable() || playing()) return;
  // Chromium answers with a promise, others with an event; pointerlockerror says it.
  const asked = $('preview').requestPointerLock();
  if (asked && asked.catch) asked.catch(() => {});
});
document.addEventListener('pointerlockchange', () => {
  if (playing()) startPlaying();
  else stopPlaying();
});
document.addEventListener('pointerlockerror', () => {
  log('warning', 'play: the browser would not lock the pointer to the picture (click it again)');
});
window.addEventListener('blur', () => {
  if (!playOn) return;
  document.exitPointerLock();
  stopPlaying();
});

document.addEventListener('mousemove', (e) => {
  if (!playOn || !playMouse) return;
  moved.dx += e.movementX;
  moved.dy += e.movementY;
  mouseSoon();
});
for (const [type, down] of [['mousedown', true], ['mouseup', false]]) {
  document.addEventListener(type, (e) => {
    if (!playOn || !playMouse) return;
    e.preventDefault();
    const b = BUTTONS[e.button];
    if (!b || buttonsHeld.has(b) === down) return;
    if (down) buttonsHeld.add(b);
    else buttonsHeld.delete(b);
    buttonsChanged = true;
    flushMouse();
    showPlay();
  });
}
document.addEventListener('contextmenu', (e) => {
  if (playOn) e.preventDefault();
});

// --- the model: what it takes --------------------------------------------------------

let modelAsked = 0;

/** Asks what the running model takes; offers play mode and start images to match. */
async function loadModel() {
  const asked = ++modelAsked;
  const m = await act('model', () => api('GET', '/api/v1/model'));
  if (!m || asked !== modelAsked) return;
  const inputs = m.inputs || {};
  const keys = Array.isArray(inputs.keys) ? inputs.keys : [];
  if (playOn && (JSON.stringify(keys) !== JSON.stringify(playKeys) || !!inputs.mouse !== playMouse)) {
    // Another model: it starts with nothing held, and may not take what this one did.
    stopPlaying(false);
    document.exitPointerLock();
  }
  playKeys = keys;
  playMouse = !!inputs.mouse;
  $('play').hidden = !playable();
  $('preview-box').classList.toggle('playable', playable());
  const takes = [keys.length && `keys ${keys.join(' ')}`, playMouse && 'the mouse'].filter(Boolean);
  $('play-takes').textContent = takes.length ? `The model takes ${takes.join(' and ')}.` : '';
  showPlay();
  const image = inputs.image === 'optional' || inputs.image === 'required';
  $('image-card').hidden = !image;
  $('image-need').textContent = inputs.image === 'required'
    ? 'This model starts from an image: pick one to start it over from.'
    : 'This model can start over from an image.';
  if (image) refreshMedia();
}

// --- start images --------------------------------------------------------------------

// The upload types the daemon takes, with the file name endings each may have, and the
// names the cue language allows (the cue schema's pattern); a file named otherwise is
// named by the daemon.
const IMAGE_TYPES = { 'image/png': /\.png$/i, 'image/jpeg': /\.jpe?g$/i };
const IMAGE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\.(png|jpg|jpeg|PNG|JPG|JPEG)$/;
let mediaAsked = 0;

async function refreshMedia() {
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

let rundownShown = null;

function renderRundown(r) {
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

function go() {
  act('GO', async () => renderRundown(await post('/api/v1/rundown/go')));
}
function back() {
  act('back', async () => renderRundown(await post('/api/v1/rundown/back')));
}
$('go').addEventListener('click', go);
$('back').addEventListener('click', back);

// --- markers, takes, checkpoints, exports --------------------------------------------

let markers = 0;
function marker() {
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
const exportJobs = new Map();

// Lists are asked for again on each event; only the newest question's answer counts, so
// a slow answer from before a change never paints over one from after it.
let takesAsked = 0;
let checkpointsAsked = 0;

async function refreshTakes() {
  const asked = ++takesAsked;
  const t = await act('takes', () => api('GET', '/api/v1/takes'));
  if (t && asked === takesAsked) {
    takes = t;
    renderTakes();
  }
}

function renderTakes() {
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

async function refreshCheckpoints() {
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
