// The only module that talks to the server. Every request goes through `request`, which adds the
// token kept in localStorage (see docs/API.md, "Tokens in the browser") and turns error bodies
// into ApiError with the server's message.

const TOKEN_KEY = 'parityscope.token';

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(secret) {
  localStorage.setItem(TOKEN_KEY, secret.trim());
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

function queryString(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    search.set(key, Array.isArray(value) ? value.join(',') : String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

async function request(method, path, { query, body, auth = true, as = 'json', cache = 'no-store' } = {}) {
  const headers = {};
  const token = auth ? getToken() : '';
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path + queryString(query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache,
    });
  } catch (error) {
    throw new ApiError(0, `the server cannot be reached (${error.message})`);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let field = null;
    try {
      const detail = await response.json();
      if (detail && detail.detail) message = String(detail.detail);
      field = detail && detail.field;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(response.status, message, field);
  }
  if (response.status === 204) return null;
  if (as === 'text') return response.text();
  return response.json();
}

/** The defaults and bounds the server declares for the pages (GET /api/v1/meta). */
export const meta = () => request('GET', '/api/v1/meta', { auth: false });

export const projects = () => request('GET', '/api/v1/projects');

export const runSummaries = (slug, query) =>
  request('GET', `/api/v1/projects/${encodeURIComponent(slug)}/run-summaries`, { query });

export const run = (id) => request('GET', `/api/v1/runs/${Number(id)}`);

export const runKeys = (id) => request('GET', `/api/v1/runs/${Number(id)}/keys`);

/**
 * GET /api/v1/compare for a view ({reference, candidates, metrics, smoothing, maxPoints}).
 * `include` names the data sections to send: the figures the panels draw (`overlay`, `diff`)
 * and/or the raw `series` (for a CSV). The page asks with `partial`: unknown runs and metrics
 * come back named in `missing` while the rest is compared.
 */
export const compare = (view, include) =>
  request('GET', '/api/v1/compare', {
    query: {
      reference: view.reference,
      candidates: view.candidates,
      metrics: view.metrics,
      smoothing: view.smoothing || undefined,
      max_points: view.maxPoints,
      include,
      partial: 'true',
    },
  });

export const notes = (runIds) => request('GET', '/api/v1/notes', { query: { runs: runIds } });

export const addNote = (runIds, step, text) =>
  request('POST', '/api/v1/notes', { body: { runs: runIds, step, text } });

export const deleteNote = (id) => request('DELETE', `/api/v1/notes/${Number(id)}`);

export const job = (id) => request('GET', `/api/v1/jobs/${Number(id)}`);

/** POST /api/v1/ladders: a parity ladder from runs (with `dry_run: true`, only its plan). */
export const createLadder = (body) => request('POST', '/api/v1/ladders', { body });

export const createShare = (body) => request('POST', '/api/v1/shares', { body });

/** The share links made for exactly these reference and candidate runs, newest first. */
export const sharesOf = (reference, candidates) =>
  request('GET', '/api/v1/shares', { query: { reference, candidates } });

export const revokeShare = (id) => request('DELETE', `/api/v1/shares/${Number(id)}`);

// A share page reads with its link only, never with the browser's own token.
export const share = (token, smoothing) =>
  request('GET', `/api/v1/s/${encodeURIComponent(token)}`, { query: { smoothing }, auth: false });

export const shareRuns = (token) =>
  request('GET', `/api/v1/s/${encodeURIComponent(token)}/runs`, { auth: false });

/** Plotly.js's own source (the page's preloaded URL, so from the browser's cache), to inline. */
export function plotlySource(url = '/static/vendor/plotly.min.js') {
  const { pathname, search } = new URL(url, window.location.href);
  return request('GET', pathname + search, { auth: false, as: 'text', cache: 'default' });
}
