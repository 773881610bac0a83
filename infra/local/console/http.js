// The API's one helper: every call goes through api(), under the API's base path.

import { state } from './state.js';

/** An API error: `code` is stable (match on it), `message` is for people. */
class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function toApiError(response) {
  const retryAfter = response.headers.get('Retry-After');
  let code = `http_${response.status}`;
  let message = response.statusText || 'Request failed';
  try {
    const body = await response.json(); // {"error": {"code": "…", "message": "…"}}
    if (body && body.error) ({ code, message } = body.error);
  } catch (_) {
    // Not JSON (a proxy's page): keep the HTTP status as the code.
  }
  if (retryAfter) message += ` (Retry-After: ${retryAfter} s)`; // 503s say when to retry
  return new ApiError(response.status, code, message, retryAfter);
}

/**
 * The API's base path: the console is served at `<base>/console`, as the API
 * is under `<base>` (API Gateway's stage, or VISITPAY_BASE_PATH locally).
 */
export const BASE = location.pathname.replace(/\/console\/?$/, '');

/**
 * Calls the API on this origin. Sends the bearer token and a JSON body;
 * answers {status, headers, body} (body: parsed JSON, a Blob for a receipt,
 * null for 304), or the Response itself with `raw` (a stream). Any non-2xx
 * answer other than 304 throws an ApiError. A 401 also forgets the cached
 * tokens: a token expires (after 12 h) while the console stays open, and the
 * next call then mints fresh ones.
 */
export async function api(method, path, { token, body, headers = {}, accept = 'application/json', raw = false, signal } = {}) {
  const init = { method, headers: { Accept: accept, ...headers }, cache: 'no-store', signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', 'The server did not answer.');
  }
  if (response.status === 304) return { status: 304, headers: response.headers, body: null };
  if (response.status === 401 && token) state.tokens = null;
  if (!response.ok) throw await toApiError(response);
  if (raw) return response;
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('application/json') ? await response.json() : await response.blob();
  return { status: response.status, headers: response.headers, body: data };
}

export const seg = encodeURIComponent; // every id goes into a path segment escaped
