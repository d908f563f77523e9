// The API client: calls, the bearer token, errors shown on the page, and the event
// log's lines. Imports nothing, so that every other module may use it from its
// top level.

export function $(id) {
  return document.getElementById(id);
}

export const STATUS_EVERY_MS = 250;
const LOG_LINES = 200;

// --- the API -------------------------------------------------------------------------

export let token = sessionStorage.getItem('cuecast-token');

export class ApiError extends Error {
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
export async function api(method, path, body, bearer = token) {
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
export async function act(what, fn) {
  try {
    return await fn();
  } catch (e) {
    report(what, e);
    return undefined;
  }
}

export function report(what, e) {
  const msg = `${what}: ${e.message}`;
  $('error-text').textContent = msg;
  $('error').hidden = false;
  log('error', msg);
  if (e.status === 401) askToken(e.message);
}

$('error-close').addEventListener('click', () => {
  $('error').hidden = true;
});

export const post = (path, body) => api('POST', path, body);
export const cue = (c) => post('/api/v1/cues', c);
export const enc = encodeURIComponent;

// --- the token -----------------------------------------------------------------------

export function askToken(why) {
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

// --- the event log's lines ---------------------------------------------------------

export function log(kind, text) {
  const li = document.createElement('li');
  li.className = kind;
  const t = document.createElement('time');
  t.textContent = new Date().toLocaleTimeString([], { hour12: false });
  li.append(t, text);
  const list = $('log');
  list.prepend(li);
  while (list.children.length > LOG_LINES) list.lastChild.remove();
}
