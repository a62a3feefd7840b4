// The console's only way to the engine: the public API, authenticated by
// the session cookie the engine sets (HttpOnly: this code never sees it),
// with the CSRF token on every request that changes something.

let csrfToken = null;

/** An error answer of the API: `{error: {code, message, details}}`. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * Calls the API. `body` is sent as JSON; `query` is an object of query
 * parameters (null and undefined left out); `headers` adds headers.
 * Answers the parsed JSON (null for 204), or throws an ApiError.
 */
export async function api(method, path, { body, query, headers = {} } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== null && v !== undefined && v !== '') params.set(k, String(v));
    }
    const s = params.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) init.headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'the engine did not answer: ' + e.message, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : { code: 'http_' + response.status, message: String(text || response.statusText) };
    if (response.status === 401) sessionListeners.forEach((f) => f(null));
    throw new ApiError(response.status, err.code, err.message, err.details ?? null);
  }
  return { data, headers: response.headers, status: response.status };
}

/** Shorthands answering the JSON body only. */
export const get = async (path, query) => (await api('GET', path, { query })).data;
export const post = async (path, body, query) => (await api('POST', path, { body, query })).data;
export const put = async (path, body, opts = {}) => (await api('PUT', path, { body, ...opts })).data;
export const del = async (path) => (await api('DELETE', path)).data;

const sessionListeners = new Set();
/** Called with null when a request finds the session gone (401). */
export function onSessionLost(f) {
  sessionListeners.add(f);
  return () => sessionListeners.delete(f);
}

/** Opens a console session (sets the cookie); answers who signed in. */
export async function signIn({ email, password, tenant }) {
  const session = await post('/v1/auth/session', { email, password, ...(tenant ? { tenant } : {}) });
  csrfToken = session.csrf_token;
  return whoAmI();
}

/** Who the session is, or null without one; recovers the CSRF token after a reload. */
export async function whoAmI() {
  try {
    const me = await get('/v1/me');
    if (me.csrf_token) csrfToken = me.csrf_token;
    return me;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function signOut() {
  try {
    await post('/v1/auth/logout');
  } finally {
    csrfToken = null;
  }
}

/** Role order, lowest first, as the engine ranks them. */
export const ROLES = ['viewer', 'operator', 'editor', 'admin', 'owner'];
export const atLeast = (me, role) => !!me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
