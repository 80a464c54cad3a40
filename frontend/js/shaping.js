// Pure data shaping for the pages: the figure a panel draws (the server's Plotly spec plus the
// page's notes, axis type and zoom), the CSV of what is shown, the config table by layer,
// sparkline geometry and run-status changes. No DOM, no Plotly; the layer order is the server's
// (meta.js).
import { META } from './meta.js';

export const LAYERS = Object.freeze([...META.layers]);
// The last layer takes every key no rule classifies (docs/API.md, GET /api/v1/meta).
const UNCLASSIFIED = LAYERS[LAYERS.length - 1];
export const NOTE_COLOUR = '#8250df';

/** Plotly renders a subset of HTML in text; user text must reach it as literal characters. */
export function escapeMarkup(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The text a Plotly label shows, for the DOM (which escapes by itself): undoes `escapeMarkup`. */
export function unescapeMarkup(text) {
  return String(text).replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function shorten(text, length) {
  const flat = String(text).replace(/\s+/g, ' ').trim();
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

/** Vertical note lines and their labels, the same on every panel. */
export function noteDecorations(notes) {
  const shapes = [];
  const annotations = [];
  (notes || []).forEach((note, index) => {
    shapes.push({
      type: 'line', xref: 'x', yref: 'paper', x0: note.step, x1: note.step, y0: 0, y1: 1,
      line: { color: NOTE_COLOUR, width: 1, dash: 'dash' },
      name: `note-${note.id}`,
    });
    const by = note.author ? ` (${note.author})` : '';
    annotations.push({
      x: note.step, xref: 'x', y: 0.02 + 0.08 * (index % 4), yref: 'paper',
      xanchor: 'left', yanchor: 'bottom', showarrow: false,
      bgcolor: 'rgba(255,255,255,0.85)', bordercolor: NOTE_COLOUR, borderwidth: 1,
      font: { color: NOTE_COLOUR, size: 11 },
      text: escapeMarkup(`✎ ${shorten(note.text, 40)}`),
      hovertext: escapeMarkup(`step ${note.step}${by}: ${note.text}`).replace(/\n/g, '<br>'),
      name: `note-${note.id}`,
    });
  });
  return { shapes, annotations };
}

// The server names the edge labels of runs clipped out of a focused y range
// `clipped-run:<run id>` (docs/API.md, GET /api/v1/compare).
const CLIP_LABEL = 'clipped-run:';

/**
 * Whether the server focused `metric`'s panel on the reference band (some run is off scale), for
 * the panel's axis type: a log axis has no focus when the band reaches zero or below.
 */
export function isFocused(payload, metric, view) {
  const spec = payload && payload.figures && payload.figures[metric] && payload.figures[metric][view.mode];
  const meta = (spec && spec.layout && spec.layout.meta) || {};
  const log = view.mode === 'overlay' && (view.logY || []).includes(metric);
  return Boolean(log ? meta.y_focus_log : meta.y_focus);
}

/**
 * The figure one panel draws: a copy of the server's spec for the view's mode, with the notes,
 * the panel's y axis (log or linear; focused on the band, or everything when `view.fitAll`
 * holds the metric), the runs hidden in the page's legend and the shared x range applied.
 * Null when the server sent no figure.
 */
export function panelFigure(payload, metric, view, notes) {
  const spec = payload && payload.figures && payload.figures[metric] && payload.figures[metric][view.mode];
  if (!spec) return null;
  const hidden = new Set(view.hidden || []);
  const data = structuredClone(spec.data).map((trace) => (
    hidden.has(trace.legendgroup) ? { ...trace, visible: false } : trace));
  const layout = structuredClone(spec.layout || {});
  const log = view.mode === 'overlay' && (view.logY || []).includes(metric);
  const meta = layout.meta || {};
  const focus = (view.fitAll || []).includes(metric) ? null : (log ? meta.y_focus_log : meta.y_focus);
  layout.yaxis = { ...(layout.yaxis || {}), type: log ? 'log' : 'linear' };
  if (focus) {
    layout.yaxis.range = [...focus];
    layout.yaxis.autorange = false;
  } else {
    delete layout.yaxis.range;
    layout.yaxis.autorange = true;
  }
  // A new axis choice is a new y range; the x range and the rest keep the user's changes.
  layout.yaxis.uirevision = `${log ? 'log' : 'linear'}-${focus ? 'focus' : 'all'}`;
  const decorations = noteDecorations(notes);
  layout.shapes = [...(layout.shapes || []), ...decorations.shapes];
  layout.annotations = [
    ...(layout.annotations || []).filter((a) => !String(a.name || '').startsWith(CLIP_LABEL)
      || (focus && !hidden.has(a.name.slice(CLIP_LABEL.length)))),
    ...decorations.annotations,
  ];
  layout.xaxis = { ...(layout.xaxis || {}) };
  if (view.xRange) {
    layout.xaxis.range = [...view.xRange];
    layout.xaxis.autorange = false;
  } else {
    delete layout.xaxis.range;
    layout.xaxis.autorange = true;
  }
  layout.autosize = true;
  // The page has one legend for every panel (`legendEntries`).
  layout.showlegend = false;
  layout.margin = { ...(layout.margin || {}), b: 45, t: 40 };
  layout.uirevision = 'parityscope';
  return { data, layout };
}

/**
 * The page's one legend: each legend group (the band, each run) once, in the order the
 * figures of the view's mode list them, with its name and colour.
 */
export function legendEntries(payload, view) {
  const entries = new Map();
  for (const metric of view.metrics) {
    const spec = payload && payload.figures && payload.figures[metric] && payload.figures[metric][view.mode];
    for (const trace of (spec && spec.data) || []) {
      if (trace.showlegend === false || !trace.legendgroup || entries.has(trace.legendgroup)) continue;
      entries.set(trace.legendgroup, {
        group: trace.legendgroup,
        name: unescapeMarkup(trace.name),
        colour: (trace.line && trace.line.color) || trace.fillcolor || '#666',
        dash: (trace.line && trace.line.dash) || 'solid',
        band: Boolean(trace.fill),
      });
    }
  }
  return [...entries.values()];
}

/** One CSV field: quoted when needed; text cannot start a spreadsheet formula. */
export function csvField(value) {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text) && !/^-?(\d|Infinity)/.test(text)) {
    text = `'${text}`;
  }
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function inRange(x, range) {
  return !range || (x >= range[0] && x <= range[1]);
}

/** The series the panels show (the mode's, inside the x zoom), one row per point. */
export function seriesCsv(payload, view) {
  const header = ['metric', 'run_id', 'run', 'role', 'step', 'value', 'bucket_min', 'bucket_max'];
  const rows = [header.join(',')];
  for (const metric of view.metrics) {
    const entry = payload.metrics && payload.metrics[metric];
    if (!entry) continue;
    if (view.mode === 'diff') {
      for (const [runId, candidate] of Object.entries(entry.candidates || {})) {
        if (!candidate.diff) continue;
        const name = (payload.runs && payload.runs[runId] && payload.runs[runId].name) || runId;
        candidate.diff.x.forEach((x, i) => {
          if (!inRange(x, view.xRange)) return;
          rows.push([metric, runId, name, 'candidate − reference', x, candidate.diff.y[i], '', '']
            .map(csvField).join(','));
        });
      }
      continue;
    }
    for (const series of entry.series || []) {
      series.x.forEach((x, i) => {
        if (!inRange(x, view.xRange)) return;
        rows.push([metric, series.run_id, series.name, series.role, x, series.y[i],
          series.y_min[i], series.y_max[i]].map(csvField).join(','));
      });
    }
  }
  return `${rows.join('\r\n')}\r\n`;
}

/** Config differences grouped by layer, in layer order, empty layers left out. */
export function groupConfigDiff(entries) {
  const groups = new Map(LAYERS.map((layer) => [layer, []]));
  for (const entry of entries || []) {
    const layer = groups.has(entry.layer) ? entry.layer : UNCLASSIFIED;
    groups.get(layer).push(entry);
  }
  return [...groups].filter(([, list]) => list.length).map(([layer, list]) => ({ layer, entries: list }));
}

/** A config value as people read it: strings bare, everything else as JSON; unset when absent. */
export function formatValue(value) {
  if (value === null || value === undefined) return 'unset';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/**
 * Where one candidate leaves the reference band: its markers (as the charts draw them) in the
 * payload's metric order, each with the definitions of the quantities its words carry.
 */
export function candidateMarkers(payload, candidateId) {
  const definitions = (payload.definitions && payload.definitions.markers) || {};
  const defined = ['distance', 'band_half_width', 'reference_rate'].map((name) => definitions[name]).filter(Boolean);
  return Object.values(payload.metrics || {})
    .flatMap((entry) => entry.markers || [])
    .filter((marker) => String(marker.run_id) === String(candidateId))
    .map((marker) => ({ metric: marker.metric, step: marker.step, summary: marker.summary, detail: marker.detail, definition: defined.join(' ') || null }));
}

/**
 * One candidate's config table as shown, by layer: the keys that differ (`config_diff`), or every
 * key (`config_table`) when `every`; the same rows either way. The reference column gives each
 * replica's value when the replicas differ among themselves. `expected` marks a difference among
 * replicas by design (a leg's own sampling seed): the server decides it, the page only says it.
 */
export function configTable(payload, candidateId, every) {
  const source = (every && payload.config_table) || payload.config_diff || {};
  const rows = (source[String(candidateId)] || []).map((row) => {
    const replicas = (row.replica_values || []).map(formatValue);
    return {
      key: row.key,
      layer: row.layer,
      reference: new Set(replicas).size > 1 ? replicas.join(', ') : formatValue(row.reference_value),
      perReplica: new Set(replicas).size > 1,
      candidate: formatValue(row.candidate_value),
      differs: row.differs !== false,
      expected: Boolean(row.expected),
    };
  });
  return groupConfigDiff(rows);
}

/** A number to three significant digits, as the verdicts' evidence gives them. */
export function threeDigits(value) {
  if (typeof value !== 'number') return value === null || value === undefined ? '' : String(value);
  if (Number.isInteger(value)) return String(value);
  return Number(value.toPrecision(3)).toString();
}

/** SVG polyline points for a sparkline inside width × height; non-finite values are skipped. */
export function sparklinePoints(x, y, width, height, pad = 2) {
  const points = [];
  for (let i = 0; i < x.length; i += 1) {
    if (typeof y[i] === 'number' && Number.isFinite(y[i])) points.push([x[i], y[i]]);
  }
  if (!points.length) return '';
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = x1 > x0 ? (width - 2 * pad) / (x1 - x0) : 0;
  const sy = y1 > y0 ? (height - 2 * pad) / (y1 - y0) : 0;
  return points
    .map(([px, py]) => {
      const left = x1 > x0 ? pad + (px - x0) * sx : width / 2;
      const top = y1 > y0 ? height - pad - (py - y0) * sy : height / 2;
      return `${left.toFixed(1)},${top.toFixed(1)}`;
    })
    .join(' ');
}

/** What changed between two polls of the runs: anything at all, and which runs finished. */
export function runChanges(before, after) {
  const previous = new Map((before || []).map((r) => [String(r.id), r]));
  let changed = false;
  const finished = [];
  for (const run of after || []) {
    const old = previous.get(String(run.id));
    if (!old) {
      changed = true;
      continue;
    }
    if (old.last_step !== run.last_step || old.status !== run.status) changed = true;
    if (old.status === 'running' && run.status !== 'running') finished.push(run);
  }
  return { changed, finished };
}

export function anyRunning(runs) {
  return (runs || []).some((r) => r.status === 'running');
}

/**
 * A self-contained HTML file: Plotly.js inlined, the figures as JSON data, the page's own
 * diagnosis and config sections. Opens offline. `sectionsHtml` must come from serialised DOM
 * (text already escaped); everything else is escaped here.
 */
export function standaloneHtml({ title, subtitle, plotlyJs, figures, sectionsHtml }) {
  // Inside <script>, "</script" or "<!--" would end or confuse the element: escape every "<".
  const json = JSON.stringify(figures).replace(/</g, '\\u003c');
  const js = String(plotlyJs).replace(/<\/script/gi, '<\\/script');
  const panels = figures.map((_, i) => `<div class="plot" id="plot-${i}"></div>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeMarkup(title)}</title>
<style>
body{font-family:system-ui,sans-serif;font-size:14px;color:#1f2328;margin:20px;}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px;}
.plot{height:380px;border:1px solid #d8dee4;border-radius:8px;}
table{border-collapse:collapse;}th,td{border-bottom:1px solid #d8dee4;padding:3px 6px;text-align:left;font-size:12px;}
.badge{font-weight:700;text-transform:uppercase;font-size:11px;}
.hidden{display:none;}
.facts .definition{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap;}
.expected-note{display:block;color:#656d76;font-style:italic;font-size:11px;}
[data-every=true] tr.differs:not(.expected) td{background:#fff8c5;}
</style>
<script>${js}</script>
</head><body>
<h1>${escapeMarkup(title)}</h1>
<p>${escapeMarkup(subtitle)}</p>
<div class="plots">
${panels}
</div>
${sectionsHtml}
<script type="application/json" id="figures">${json}</script>
<script>
var figures = JSON.parse(document.getElementById("figures").textContent);
figures.forEach(function (f, i) {
  Plotly.newPlot("plot-" + i, f.data, f.layout, {displaylogo: false, responsive: true});
});
</script>
</body></html>
`;
}

// -- x: relative wall time (docs/COMPARE.md, "x: step or relative wall time") -----------------

/** The numbers of an array as the server sends it: a plain list or a Plotly typed array. */
export function plainNumbers(array) {
  if (!array) return [];
  if (Array.isArray(array) || ArrayBuffer.isView(array)) return Array.from(array, Number);
  const bytes = Uint8Array.from(atob(array.bdata), (c) => c.charCodeAt(0));
  const Typed = { i1: Int8Array, u1: Uint8Array, i2: Int16Array, u2: Uint16Array, i4: Int32Array,
    u4: Uint32Array, f4: Float32Array, f8: Float64Array }[array.dtype];
  if (!Typed) throw new Error(`unknown typed array dtype ${array.dtype}`);
  return Array.from(new Typed(bytes.buffer), Number);
}

/**
 * Whether the panels can be drawn against relative wall time: every compared run must have
 * recorded wall times (`runs[id].wall_time`, docs/API.md). `reason` says why not, in words.
 */
export function wallTimeAvailability(payload) {
  const ids = [...((payload && payload.references) || []), ...((payload && payload.candidates) || [])];
  const runs = ids.map((id) => (payload.runs || {})[String(id)]).filter(Boolean);
  if (!runs.length || runs.some((run) => !('wall_time' in run))) {
    return { ok: false, reason: 'this comparison carries no wall times' };
  }
  const without = runs.filter((run) => !run.wall_time).map((run) => run.name);
  if (without.length) {
    const named = without.length > 3 ? [...without.slice(0, 2), `${without.length - 2} others`] : without;
    const who = named.length === 1 ? named[0] : `${named.slice(0, -1).join(', ')} and ${named[named.length - 1]}`;
    return { ok: false, reason: `${who} recorded no wall times (no times were sent with ${without.length === 1 ? 'its' : 'their'} points), so x is step` };
  }
  return { ok: true, reason: '' };
}

/** The unit the time axis is drawn in: seconds, minutes or hours, after the longest run. */
export function timeUnit(payload) {
  let longest = 0;
  for (const run of Object.values((payload && payload.runs) || {})) {
    const seconds = run.wall_time && run.wall_time.seconds;
    if (seconds && seconds.length) longest = Math.max(longest, seconds[seconds.length - 1]);
  }
  if (longest > 3 * 3600) return { name: 'h', seconds: 3600 };
  if (longest > 180) return { name: 'min', seconds: 60 };
  return { name: 's', seconds: 1 };
}

/**
 * step → seconds since the run's first point, from `wall_time` ({steps, seconds}, sorted by
 * step): exact at the steps it holds, linear between its neighbours elsewhere, NaN outside.
 */
export function stepClock(wallTime) {
  const steps = (wallTime && wallTime.steps) || [];
  const seconds = (wallTime && wallTime.seconds) || [];
  return (step) => {
    let lo = 0;
    let hi = steps.length - 1;
    if (hi < 0 || step < steps[0] || step > steps[hi]) return NaN;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (steps[mid] <= step) lo = mid;
      else hi = mid;
    }
    if (steps[lo] === step) return seconds[lo];
    if (steps[hi] === step) return seconds[hi];
    return seconds[lo] + ((seconds[hi] - seconds[lo]) * (step - steps[lo])) / (steps[hi] - steps[lo]);
  };
}

function median(values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!sorted.length) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The clocks of a payload: one per run, and the band's (the median of the references'). */
export function clocks(payload) {
  const runs = {};
  for (const [id, run] of Object.entries(payload.runs || {})) runs[id] = stepClock(run.wall_time);
  const references = (payload.references || []).map((id) => runs[String(id)]).filter(Boolean);
  return { runs, band: (step) => median(references.map((clock) => clock(step))) };
}

/**
 * A panel's figure (as `panelFigure` makes it) redrawn against relative wall time: every trace's
 * x through its run's clock (the band's through the references' median), the divergence markers
 * (named `marker:<run id>` by the server) and notes moved with them, the hover still naming each
 * point's step, and the view's x range (seconds) in the axis unit. A new figure; `figure` is kept.
 */
export function timeFigure(figure, payload, view) {
  const unit = timeUnit(payload);
  const { runs, band } = clocks(payload);
  const clockOf = (group) => (group === 'band' ? band : runs[String(group)]);
  const toUnit = (seconds) => seconds / unit.seconds;
  const data = figure.data.map((trace) => {
    const clock = clockOf(trace.legendgroup);
    if (!clock) return trace;
    const steps = plainNumbers(trace.x);
    const moved = { ...trace, x: steps.map((step) => toUnit(clock(step))), text: steps };
    if (trace.hovertemplate) {
      const at = trace.hovertemplate.indexOf('<extra>');
      const head = at < 0 ? trace.hovertemplate : trace.hovertemplate.slice(0, at);
      const tail = at < 0 ? '' : trace.hovertemplate.slice(at);
      moved.hovertemplate = `${head} · step %{text}${tail}`;
    }
    return moved;
  });
  const layout = structuredClone(figure.layout);
  // Markers move with their run's clock, the page's notes with the band's.
  const place = (item, step) => {
    const run = String(item.name || '').startsWith('marker:') ? item.name.slice('marker:'.length) : null;
    const clock = run !== null ? runs[run] : (String(item.name || '').startsWith('note-') ? band : null);
    return clock ? toUnit(clock(step)) : null;
  };
  for (const shape of layout.shapes || []) {
    if (shape.xref !== 'x') continue;
    const x = place(shape, shape.x0);
    if (x !== null) Object.assign(shape, { x0: x, x1: x });
  }
  for (const annotation of layout.annotations || []) {
    if (annotation.xref !== 'x') continue;
    const x = place(annotation, annotation.x);
    if (x !== null) annotation.x = x;
  }
  const label = { s: 'seconds', min: 'minutes', h: 'hours' }[unit.name];
  layout.xaxis = {
    ...(layout.xaxis || {}),
    title: { text: `relative wall time (${label} since each run’s first point)` },
    unifiedhovertitle: { text: `%{x:.3~f} ${unit.name}` },
    // A new axis: the zoom made on the other one does not carry over.
    uirevision: 'time',
  };
  if (view && view.xRange) {
    layout.xaxis.range = view.xRange.map(toUnit);
    layout.xaxis.autorange = false;
  }
  layout.meta = { ...(layout.meta || {}), x_unit_seconds: unit.seconds };
  return { data, layout };
}
