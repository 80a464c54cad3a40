// The compare page's view state and its two spellings: the page URL's query string and a share
// link's stored view (docs/API.md, POST /api/v1/shares). Pure functions, no DOM; the defaults and
// bounds are the server's (meta.js).
import { META } from './meta.js';

export const DEFAULT_METRICS = Object.freeze([...META.compare.default_metrics]);
const MAX_POINTS = META.compare.max_points;
const DEFAULT_MAX_POINTS = MAX_POINTS.default;

export function emptyView() {
  return {
    reference: [],
    candidates: [],
    metrics: [...DEFAULT_METRICS],
    smoothing: META.compare.smoothing,
    mode: 'overlay',
    logY: [], // the metrics whose panel has a log y axis
    xRange: null, // steps, or seconds of relative wall time when xAxis is 'time'
    xAxis: 'step', // 'step' or 'time' (each run's relative wall time)
    maxPoints: DEFAULT_MAX_POINTS,
  };
}

function parseIds(raw, name, errors) {
  if (!raw) return [];
  const ids = [];
  for (const part of raw.split(',')) {
    const text = part.trim();
    if (!/^[1-9][0-9]{0,15}$/.test(text)) {
      errors.push(`${name}: ${JSON.stringify(text)} is not a run id`);
      continue;
    }
    const id = Number(text);
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}

/** Read a view from `location.search`; problems are reported in `errors`, never thrown. */
export function parseView(search) {
  const params = new URLSearchParams(search);
  const errors = [];
  const view = emptyView();
  view.reference = parseIds(params.get('reference'), 'reference', errors);
  // A run that is also a reference is kept: the server refuses that selection with its reason.
  view.candidates = parseIds(params.get('candidates'), 'candidates', errors);
  const metrics = (params.get('metrics') || '').split(',').map((m) => m.trim()).filter(Boolean);
  if (metrics.length) view.metrics = [...new Set(metrics)];
  if (params.has('smoothing')) {
    const smoothing = Number(params.get('smoothing'));
    if (Number.isFinite(smoothing) && smoothing >= 0 && smoothing < 1) view.smoothing = smoothing;
    else errors.push('smoothing: must be a number in [0, 1)');
  }
  if (params.get('mode') === 'diff') view.mode = 'diff';
  // `logy=1` (every panel) is how links made before log y was per panel say it.
  const logY = params.get('logy');
  if (logY === '1') view.logY = [...view.metrics];
  else if (logY) view.logY = [...new Set(logY.split(',').map((m) => m.trim()).filter((m) => view.metrics.includes(m)))];
  if (params.has('x')) {
    if (params.get('x') === 'time' || params.get('x') === 'step') view.xAxis = params.get('x');
    else errors.push('x: must be step or time');
  }
  const x0 = Number(params.get('x0'));
  const x1 = Number(params.get('x1'));
  if (params.has('x0') && params.has('x1') && Number.isFinite(x0) && Number.isFinite(x1) && x0 < x1) {
    view.xRange = [x0, x1];
  }
  const maxPoints = Number(params.get('max_points'));
  if (params.has('max_points') && Number.isInteger(maxPoints) && maxPoints >= MAX_POINTS.min && maxPoints <= MAX_POINTS.max) {
    view.maxPoints = maxPoints;
  }
  if (!view.reference.length) errors.push('reference: choose at least one reference run');
  return { view, errors };
}

function sameMetrics(metrics) {
  return metrics.length === DEFAULT_METRICS.length && metrics.every((m, i) => m === DEFAULT_METRICS[i]);
}

/** The query string for a view (defaults left out, commas kept readable). */
export function viewToSearch(view) {
  const parts = [`reference=${view.reference.join(',')}`];
  if (view.candidates.length) parts.push(`candidates=${view.candidates.join(',')}`);
  if (!sameMetrics(view.metrics)) {
    parts.push(`metrics=${view.metrics.map((m) => encodeURIComponent(m)).join(',')}`);
  }
  if (view.smoothing) parts.push(`smoothing=${view.smoothing}`);
  if (view.mode === 'diff') parts.push('mode=diff');
  if (view.logY.length) parts.push(`logy=${view.logY.map((m) => encodeURIComponent(m)).join(',')}`);
  if (view.xAxis === 'time') parts.push('x=time');
  if (view.xRange) parts.push(`x0=${roundStep(view.xRange[0])}`, `x1=${roundStep(view.xRange[1])}`);
  if (view.maxPoints !== DEFAULT_MAX_POINTS) parts.push(`max_points=${view.maxPoints}`);
  return `?${parts.join('&')}`;
}

function roundStep(x) {
  return Math.round(x * 1000) / 1000;
}

/** The view as a share link stores it. */
export function toShareView(view) {
  return {
    reference: [...view.reference],
    candidates: [...view.candidates],
    metrics: [...view.metrics],
    smoothing: view.smoothing,
    mode: view.mode,
    log_y: [...view.logY],
    x_range: view.xRange ? view.xRange.map(roundStep) : null,
    x_axis: view.xAxis === 'time' ? 'time' : 'step',
    max_points: view.maxPoints,
  };
}

export function fromShareView(stored) {
  const metrics = [...(stored.metrics || DEFAULT_METRICS)];
  let logY = [];
  if (stored.log_y === true) logY = [...metrics];
  else if (Array.isArray(stored.log_y)) logY = stored.log_y.filter((m) => metrics.includes(m));
  return {
    reference: [...stored.reference],
    candidates: [...(stored.candidates || [])],
    metrics,
    smoothing: stored.smoothing || META.compare.smoothing,
    mode: stored.mode === 'diff' ? 'diff' : 'overlay',
    logY,
    xRange: stored.x_range ? [...stored.x_range] : null,
    xAxis: stored.x_axis === 'time' ? 'time' : 'step',
    maxPoints: stored.max_points || DEFAULT_MAX_POINTS,
  };
}

/** Every run of the comparison, references first. */
export function runIds(view) {
  return [...view.reference, ...view.candidates];
}
