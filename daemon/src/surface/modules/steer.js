// Steering the picture: prompt and scenes, params, the camera (keys, joystick,
// gamepad), and play mode (the model's own keys and mouse, as the model says it takes).

import { $, act, api, cue, enc, log, post, report } from './api.js';
import { back, go, marker, refreshMedia } from './show.js';
import { el, fmt } from './status.js';

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

export async function loadScenes() {
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

export async function loadParams() {
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

export function renderParamValues(values) {
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

export const AXES = ['forward', 'strafe', 'rise', 'yaw', 'pitch'];
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
export async function loadModel() {
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
