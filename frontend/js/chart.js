// The only module that touches Plotly: the plotly package's own bundle, which the page preloads
// (<link id="plotly-js">) and this module runs on first use. It draws figures it is given; it
// computes nothing.

let loading = null;

/**
 * Run Plotly.js (once) and resolve with it. The page calls this right after asking for its data,
 * so compiling 4.8 MB of JavaScript overlaps the server's work.
 */
export function load() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const preload = document.getElementById('plotly-js');
      if (!preload) {
        reject(new Error('the page does not load Plotly.js'));
        return;
      }
      const script = document.createElement('script');
      script.src = preload.href;
      script.addEventListener('load', () => {
        performance.mark('parityscope:plotly-ready');
        resolve(window.Plotly);
      });
      script.addEventListener('error', () => reject(new Error('Plotly.js did not load')));
      document.head.append(script);
    });
  }
  return loading;
}

function plotly() {
  if (!window.Plotly) throw new Error('Plotly.js did not load');
  return window.Plotly;
}

// The modebar lists its buttons explicitly: only ones that work in the browser and keep the data
// here (PNG, zoom, pan, reset). No link out, no logo, no "edit in Chart Studio" or cloud export.
export const MODEBAR_BUTTONS = Object.freeze([
  'toImage', 'zoom2d', 'pan2d', 'zoomIn2d', 'zoomOut2d', 'autoScale2d', 'resetScale2d',
]);

const CONFIG = {
  responsive: true,
  displaylogo: false,
  showLink: false,
  showSendToCloud: false,
  showEditInChartStudio: false,
  modeBarButtons: [[...MODEBAR_BUTTONS]],
};

/**
 * Draw (or redraw in place) `figure` in `div`; resolves once Plotly has drawn it. The handlers
 * are attached after the first draw (Plotly adds its event API to the div then): `onXRange` on
 * zoom, `onClickStep` on a click, `onHoverStep(step)` / `onUnhover()` when the pointer hovers a
 * step or leaves (not for hovers set by `hoverStep`).
 */
export async function draw(div, figure, { filename, onXRange, onClickStep, onHoverStep, onUnhover } = {}) {
  const config = { ...CONFIG, toImageButtonOptions: { format: 'png', filename: filename || 'parityscope', scale: 2 } };
  await load();
  await plotly().react(div, figure.data, figure.layout, config);
  if (!div.dataset.wired) {
    div.dataset.wired = '1';
    if (onXRange) listenXRange(div, onXRange);
    if (onClickStep) listenClickStep(div, onClickStep);
    if (onHoverStep) listenHover(div, onHoverStep, onUnhover);
  }
  return div;
}

// True while this module itself moves the hover of other panels, so their events are not echoed.
let echoing = false;

function listenHover(div, onHoverStep, onUnhover) {
  div.on('plotly_hover', (event) => {
    const point = event && event.points && event.points[0];
    if (echoing || !point || !Number.isFinite(Number(point.x))) return;
    onHoverStep(Number(point.x));
  });
  div.on('plotly_unhover', () => {
    if (!echoing && onUnhover) onUnhover();
  });
}

/** Show the hover of `div` at `step`, as if the pointer were there (used to mirror another panel). */
export function hoverStep(div, step) {
  if (!window.Plotly || !div._fullLayout) return;
  echoing = true;
  try {
    window.Plotly.Fx.hover(div, { xval: step }, 'xy');
  } finally {
    echoing = false;
  }
}

/** Hide the hover of `div`. */
export function unhover(div) {
  if (!window.Plotly || !div._fullLayout) return;
  echoing = true;
  try {
    window.Plotly.Fx.unhover(div);
  } finally {
    echoing = false;
  }
}

export function purge(div) {
  if (window.Plotly) window.Plotly.purge(div);
}

/**
 * Call `handler(range)` when the user zooms or pans `div` on x: `[x0, x1]`, or null when the
 * axis went back to autorange. Relayouts that do not touch x are ignored.
 */
function listenXRange(div, handler) {
  div.on('plotly_relayout', (event) => {
    if (!event) return;
    if ('xaxis.range[0]' in event && 'xaxis.range[1]' in event) {
      handler([Number(event['xaxis.range[0]']), Number(event['xaxis.range[1]'])]);
    } else if (Array.isArray(event['xaxis.range'])) {
      handler(event['xaxis.range'].map(Number));
    } else if (event['xaxis.autorange'] === true) {
      handler(null);
    }
  });
}

/** Set the x range of `div` without touching anything else. */
export function setXRange(div, range) {
  const update = range ? { 'xaxis.range': [...range], 'xaxis.autorange': false } : { 'xaxis.autorange': true };
  return plotly().relayout(div, update);
}

/** The x range `div` shows now. */
export function xRange(div) {
  const axis = div._fullLayout && div._fullLayout.xaxis;
  return axis ? [...axis.range] : null;
}

/**
 * Call `handler(step)` when the user clicks a point of `div`. On an x axis that is not the step
 * (relative wall time), each point's `text` holds its step.
 */
function listenClickStep(div, handler) {
  div.on('plotly_click', (event) => {
    const point = event && event.points && event.points[0];
    if (!point) return;
    const step = point.text !== undefined && point.text !== '' ? Number(point.text) : Number(point.x);
    if (Number.isFinite(step)) handler(Math.round(step));
  });
}

/** Plotly's own PNG export of one panel. */
export function downloadPng(div, filename) {
  return plotly().downloadImage(div, { format: 'png', filename, scale: 2 });
}

/** The figure as drawn (data and layout, without Plotly's internal fields), for an export. */
export function drawnFigure(div) {
  const strip = (value) => JSON.parse(JSON.stringify(value, (key, v) => (key.startsWith('_') ? undefined : v)));
  return { data: strip(div.data), layout: strip(div.layout) };
}
