// The compare page: panels, controls, live updates, notes, share links and exports. Opened as
// /compare?reference=…&candidates=… (the view lives in the URL) or as /s/<token> (a share link:
// read-only, the view it was made with, frozen data if it was frozen).
import * as api from './api.js';
import * as chart from './chart.js';
import { renderConfigTable, renderDiagnosis } from './diagnosis-view.js';
import { addBisectButtons, focusFigure, ladderIdFromSearch, loadLadder, renderLadder } from './ladder-view.js';
import { byId, clear, h } from './dom.js';
import { META } from './meta.js';
import { downloadCsv, downloadHtml, makeShareLink, renderShareList } from './page-actions.js';
import { anyRunning, isFocused, legendEntries, panelFigure, runChanges, timeFigure, timeUnit, wallTimeAvailability } from './shaping.js';
import { mountTokenBar } from './tokenbar.js';
import { DEFAULT_METRICS, fromShareView, parseView, runIds, toShareView, viewToSearch } from './viewstate.js';

const shareToken = window.location.pathname.startsWith('/s/')
  ? decodeURIComponent(window.location.pathname.slice(3))
  : null;
// The smoothing slider asks the server once it has been still this long (arrow keys fire a change
// per press).
const SETTLE_MS = 400;
const pollMs = Math.min(60000, Math.max(500, Number(new URLSearchParams(window.location.search).get('poll')) || 5000));

const state = {
  view: null,
  share: null, // {id, frozen, created_at, expires_at, view} when opened from a share link
  payload: null,
  notes: [],
  runs: [], // [{id, name, status, last_step}] as last seen
  panels: new Map(), // metric → {root, plot, note}
  syncing: false,
  pollTimer: null,
  drawnOnce: false,
  metricOptionsLoaded: false,
  smoothingTimer: null,
  // Whether the stored token may write to the runs' project (`loadWriteAccess`): pinning notes
  // and making or revoking share links are offered only then.
  canWrite: false,
  configEvery: false, // "show every key"
  // The parity ladder shown under the panels (ladder-view.js): its job id, the focused row's runs.
  ladderId: shareToken ? null : ladderIdFromSearch(window.location.search),
  ladder: null,
  ladderFocus: null,
};

// -- data ------------------------------------------------------------------------------------

// The panels need the figures of the mode shown; diff figures are asked for once diff mode is on.
// Each run's wall times come along, so "x: relative time" redraws without asking again.
function figureSections(view) {
  return [...(view.mode === 'diff' ? ['overlay', 'diff'] : ['overlay']), 'wall_time'];
}

// Whether the panels are drawn against relative wall time: asked for, and every run recorded it.
function onTimeAxis() {
  return state.view.xAxis === 'time' && wallTimeAvailability(state.payload).ok;
}

// The seconds one unit of the drawn x axis stands for (1 on steps).
function xUnitSeconds() {
  return onTimeAxis() ? timeUnit(state.payload).seconds : 1;
}

// The runs the server compared (the view's, less any it named as missing).
function comparedRunIds(payload = state.payload) {
  return [...payload.references, ...payload.candidates];
}

function hasFigures(payload, view) {
  if (!payload) return false;
  return view.metrics.every((m) => !payload.figures[m] || payload.figures[m][view.mode]);
}

function runsOf(payload) {
  return Object.values(payload.runs || {}).map((r) => ({ id: r.id, name: r.name, status: r.status, last_step: r.last_step }));
}

async function fetchData() {
  if (shareToken) {
    const smoothing = state.share && !state.share.frozen && state.view.smoothing !== state.share.view.smoothing
      ? state.view.smoothing : undefined;
    const request = api.share(shareToken, smoothing);
    chart.load().catch(() => {});
    const body = await request;
    if (!state.share) state.view = { ...fromShareView(body.share.view), hidden: [], fitAll: [] };
    state.share = body.share;
    state.payload = body.data.comparison;
    state.notes = body.data.notes;
    state.ladder = body.data.ladder || null;
    if (state.ladder) state.ladderId = body.share.view.ladder;
  } else {
    const comparing = api.compare(state.view, figureSections(state.view));
    const noting = api.notes(runIds(state.view)).catch((error) => error);
    chart.load().catch(() => {}); // compiles while the server works; drawing reports failures
    // The comparison's answer comes first: its refusal is the one the page shows.
    const payload = await comparing;
    let notes = await noting;
    // With a run the server did not find, the notes are those of the runs it compared.
    if (notes instanceof Error) notes = await api.notes(comparedRunIds(payload));
    state.payload = payload;
    state.notes = notes;
  }
  state.runs = runsOf(state.payload);
  if (!state.drawnOnce) performance.mark('parityscope:data');
}

async function refresh() {
  try {
    await fetchData();
    setStatus('');
  } catch (error) {
    setStatus(describeError(error), true);
    // A page that never had data is a refusal: it offers nothing to edit or export, only a way
    // back to choosing runs.
    if (!state.payload) {
      document.body.classList.add('refused');
      if (!shareToken) byId('status').append(' — ', h('a', { href: '/' }, 'pick runs on a project’s runs page'));
    }
    return false;
  }
  document.body.classList.remove('refused');
  if (state.view.xAxis === 'time' && !wallTimeAvailability(state.payload).ok) {
    // Step only, and the address says so; the reason stands next to the control.
    state.view.xAxis = 'step';
    state.view.xRange = null;
    syncUrl();
  }
  renderAll();
  await drawPanels();
  return true;
}

function describeError(error) {
  if (error.status === 410) return `${error.message}.`;
  if (error.status === 404 && shareToken) return 'This share link does not exist.';
  if (error.status === 401) return 'This deployment needs a token to read: enter one above.';
  return error.message;
}

function setStatus(text, isError = false) {
  const status = byId('status');
  status.textContent = text;
  status.className = isError ? 'error' : 'muted';
}

function syncUrl() {
  if (shareToken) return; // a share link keeps its own address; view changes stay local
  const ladder = state.ladderId !== null ? `&ladder=${state.ladderId}` : '';
  window.history.replaceState(null, '', `/compare${viewToSearch(state.view)}${ladder}`);
}

// -- panels ----------------------------------------------------------------------------------

// The panel's title is the figure's own (drawn by Plotly, so it is in the PNG too); the head
// holds the panel's controls only.
function createPanel(metric) {
  const plot = h('div', { class: 'plot' });
  const note = h('div', { class: 'panel-note' });
  const fit = h('button', { type: 'button', class: 'fit-all hidden', title: 'show every run, however far off', onclick: () => toggleFitAll(metric) }, 'fit all');
  const log = h('button', { type: 'button', class: 'log-y', 'aria-pressed': 'false', title: 'log y axis for this panel', onclick: () => toggleLogY(metric) }, 'log y');
  const root = h('div', { class: 'panel', dataset: { metric } },
    h('div', { class: 'panel-head' },
      fit, log,
      h('button', { type: 'button', class: 'png', title: 'download this panel as PNG', onclick: () => chart.downloadPng(plot, `parityscope-${metric}`) }, 'PNG'),
      shareToken ? null : h('button', { type: 'button', class: 'remove', title: 'remove this panel', onclick: () => removeMetric(metric) }, '×')),
    plot, note);
  const panel = { root, plot, note, fit, log };
  state.panels.set(metric, panel);
  return panel;
}

function toggleIn(list, item) {
  return list.includes(item) ? list.filter((m) => m !== item) : [...list, item];
}

function toggleFitAll(metric) {
  state.view.fitAll = toggleIn(state.view.fitAll, metric);
  drawPanels();
}

function toggleLogY(metric) {
  state.view.logY = toggleIn(state.view.logY, metric);
  syncUrl();
  drawPanels();
}

function renderPanelHead(metric, panel) {
  const focused = isFocused(state.payload, metric, state.view);
  const fitted = state.view.fitAll.includes(metric);
  panel.fit.classList.toggle('hidden', !focused);
  panel.fit.textContent = fitted ? 'focus on band' : 'fit all';
  panel.fit.setAttribute('aria-pressed', String(fitted));
  panel.log.setAttribute('aria-pressed', String(state.view.logY.includes(metric)));
  panel.log.disabled = state.view.mode === 'diff';
}

// Hovering a step on one panel shows the same step on every other panel.
function hoverEverywhere(source, step) {
  for (const [metric, panel] of state.panels) {
    if (metric !== source && panel.plot.data) chart.hoverStep(panel.plot, step);
  }
}

function unhoverEverywhere(source) {
  for (const [metric, panel] of state.panels) {
    if (metric !== source && panel.plot.data) chart.unhover(panel.plot);
  }
}

function resolvedNote(metric) {
  const entry = state.payload.metrics && state.payload.metrics[metric];
  if (!entry) return '';
  const keys = [...new Set(Object.values(entry.resolved || {}).filter(Boolean))];
  if (!keys.length) return `no run logged ${metric}`;
  const band = entry.band ? ` · band: ${entry.band.source}, ±${entry.band.k}σ` : ' · no reference band';
  return `key: ${keys.join(', ')}${band}`;
}

// The metrics the panels show: the view's, less those the server named as unknown.
function shownMetrics() {
  const unknown = new Set(((state.payload && state.payload.missing) || [])
    .filter((m) => m.kind === 'metric').map((m) => m.name));
  return state.view.metrics.filter((m) => !unknown.has(m));
}

async function drawPanels() {
  const container = byId('panels');
  const metrics = shownMetrics();
  for (const [metric, panel] of [...state.panels]) {
    if (!metrics.includes(metric)) {
      chart.purge(panel.plot);
      panel.root.remove();
      state.panels.delete(metric);
    }
  }
  // Every panel is in the grid before the first draws, so each is sized to its own cell.
  for (const metric of metrics) container.append((state.panels.get(metric) || createPanel(metric)).root);
  const draws = [];
  for (const metric of metrics) {
    const panel = state.panels.get(metric);
    let figure = focusFigure(panelFigure(state.payload, metric, state.view, state.notes), state.payload, state.ladderFocus);
    if (figure && onTimeAxis()) figure = timeFigure(figure, state.payload, state.view);
    panel.note.textContent = figure ? resolvedNote(metric) : `no data for ${metric}`;
    renderPanelHead(metric, panel);
    if (figure) {
      draws.push(chart.draw(panel.plot, figure, {
        filename: `parityscope-${metric}`,
        onXRange: (range) => onZoom(metric, range),
        onClickStep: (step) => { byId('note-step').value = String(step); },
        onHoverStep: (step) => hoverEverywhere(metric, step),
        onUnhover: () => unhoverEverywhere(metric),
      }));
    }
  }
  renderLegend();
  await Promise.all(draws);
  container.dataset.drawn = String(draws.length);
  if (!state.drawnOnce) {
    state.drawnOnce = true;
    performance.mark('parityscope:panels-drawn');
  }
}

async function onZoom(source, range) {
  if (state.syncing) return;
  // Kept in steps, or in seconds on the time axis (whatever unit the axis is drawn in).
  state.view.xRange = range && range.map((x) => x * xUnitSeconds());
  state.syncing = true;
  try {
    await Promise.all([...state.panels]
      .filter(([metric]) => metric !== source)
      .map(([, panel]) => chart.setXRange(panel.plot, range)));
  } finally {
    state.syncing = false;
  }
  syncUrl();
}

function removeMetric(metric) {
  state.view.metrics = state.view.metrics.filter((m) => m !== metric);
  state.view.logY = state.view.logY.filter((m) => m !== metric);
  offerMetric(metric);
  syncUrl();
  drawPanels();
}

// -- the rest of the page --------------------------------------------------------------------

// One legend for every panel: hiding a run (or the band) hides it on each of them.
function renderLegend() {
  const legend = clear(byId('legend'));
  const hidden = new Set(state.view.hidden);
  for (const entry of legendEntries(state.payload, state.view)) {
    const swatch = h('span', { class: entry.band ? 'swatch band' : 'swatch', dataset: { dash: entry.dash } });
    swatch.style.setProperty('--swatch', entry.colour);
    legend.append(h('button', {
      type: 'button',
      class: 'legend-item',
      'aria-pressed': String(!hidden.has(entry.group)),
      title: hidden.has(entry.group) ? 'show on every panel' : 'hide on every panel',
      dataset: { group: entry.group },
      onclick: () => {
        state.view.hidden = toggleIn(state.view.hidden, entry.group);
        drawPanels();
      },
    }, swatch, entry.name));
  }
}

// Runs and metrics the server could not use: the rest is drawn, and each of these is named.
function renderProblems() {
  const list = clear(byId('problems'));
  const missing = (state.payload && state.payload.missing) || [];
  list.classList.toggle('hidden', !missing.length);
  const runsPage = state.payload && state.payload.project ? `/projects/${encodeURIComponent(state.payload.project)}` : '/';
  for (const problem of missing) {
    list.append(h('li', { class: 'error', dataset: { kind: problem.kind } },
      problem.detail, ' — ', h('a', { href: runsPage }, 'back to the runs page')));
  }
}

function renderRunsStrip() {
  const strip = clear(byId('runs-strip'));
  const roles = Object.fromEntries(Object.values(state.payload.runs || {}).map((r) => [String(r.id), r.role]));
  for (const run of state.runs) {
    strip.append(h('span', { class: 'run-chip', dataset: { runId: run.id } },
      h('span', { class: 'name' }, run.name),
      h('span', { class: 'role' }, roles[String(run.id)] || ''),
      h('span', { class: `status ${run.status}` }, run.status),
      h('span', { class: 'muted' }, `step ${run.last_step ?? '—'}`)));
  }
  const names = (role) => state.runs.filter((r) => roles[String(r.id)] === role).map((r) => r.name);
  const title = `${names('reference').join(' + ')}${names('candidate').length ? ` vs ${names('candidate').join(', ')}` : ''}`;
  document.title = `${title} · ParityScope`;
  byId('crumbs').textContent = shareToken ? `shared comparison › ${title}` : `compare › ${title}`;
}

function renderShareBanner() {
  const banner = byId('share-banner');
  if (!state.share) return;
  const made = new Date(state.share.created_at);
  clear(banner);
  banner.classList.remove('hidden');
  banner.classList.toggle('frozen', state.share.frozen);
  banner.dataset.frozen = String(state.share.frozen);
  banner.append(
    h('strong', {}, 'Shared view'), ' · made ', h('time', { datetime: state.share.created_at, id: 'share-made' }, made.toLocaleString()),
    ' · ', state.share.frozen
      ? h('strong', { id: 'share-kind' }, 'frozen snapshot: the data as it was then; later points are not shown')
      : h('span', { id: 'share-kind' }, 'live: shows the runs as they are now'),
    ` · smoothing ${Number(state.view.smoothing).toFixed(2)} · read-only`,
    state.share.expires_at ? ` · expires ${new Date(state.share.expires_at).toLocaleString()}` : '');
}

function renderNotes() {
  const list = clear(byId('notes'));
  if (!state.notes.length) list.append(h('li', { class: 'muted' }, 'No notes on this comparison yet.'));
  for (const note of state.notes) {
    list.append(h('li', { dataset: { noteId: note.id } },
      h('span', { class: 'step' }, `step ${note.step}`),
      h('span', { class: 'text' }, note.text),
      h('span', { class: 'muted' }, ` — ${note.author || 'anonymous'}, ${new Date(note.created_at).toLocaleString()} `),
      !state.canWrite ? null : h('button', { type: 'button', class: 'note-delete', title: 'delete this note', onclick: () => deleteNote(note.id) }, '×')));
  }
}

function renderControls() {
  const view = state.view;
  byId('smoothing').value = String(view.smoothing);
  byId('smoothing-value').textContent = view.smoothing.toFixed(2);
  byId(view.mode === 'diff' ? 'mode-diff' : 'mode-overlay').checked = true;
  renderXAxis();
  // A share page is read-only: it shows the link's view (its smoothing is in the banner) and
  // offers nothing that edits.
  for (const id of ['smoothing-control', 'metric-controls']) {
    byId(id).classList.toggle('hidden', Boolean(shareToken));
  }
  renderEditing();
}

// x: step | relative time. Relative time is offered only when every run recorded wall times;
// otherwise the reason is written next to the control.
function renderXAxis() {
  const availability = state.payload ? wallTimeAvailability(state.payload) : { ok: true, reason: '' };
  const time = byId('x-time');
  time.disabled = !availability.ok;
  time.title = availability.ok ? 'each run’s wall time since its first recorded point' : availability.reason;
  byId(onTimeAxis() ? 'x-time' : 'x-step').checked = true;
  byId('x-axis-reason').textContent = availability.ok ? '' : availability.reason;
  byId('x-axis-control').dataset.axis = onTimeAxis() ? 'time' : 'step';
}

// Editing controls only where the token may write; elsewhere the notes say what is needed.
function renderEditing() {
  for (const id of ['share-controls', 'note-form']) byId(id).classList.toggle('hidden', !state.canWrite);
  byId('note-hint').classList.toggle('hidden', state.canWrite || Boolean(shareToken));
  if (!state.canWrite) {
    byId('share-links').classList.add('hidden');
    clear(byId('share-result')).classList.add('hidden');
  }
}

function renderConfig() {
  const every = state.configEvery && Boolean(state.payload.config_table);
  byId('config-all-toggle').classList.toggle('hidden', !state.payload.config_table);
  byId('config-all').checked = every;
  byId('config-scope').textContent = every
    ? 'Every key, by layer; the keys that differ from the reference are highlighted.'
    : 'Only keys whose value differs from the reference, by layer.';
  renderConfigTable(byId('config-diff'), state.payload, every);
}

function renderAll() {
  renderControls();
  renderShareBanner();
  renderRunsStrip();
  renderProblems();
  renderDiagnosis(byId('diagnosis'), state.payload);
  renderConfig();
  renderNotes();
  renderLadderSection();
}

function renderLadderSection() {
  const onFocus = (runs) => { state.ladderFocus = runs; drawPanels(); };
  if (!shareToken) addBisectButtons(state.payload, state.view);
  if (shareToken) renderLadder(state.ladder, state.ladderId, state.payload, { onFocus, shared: true });
  else if (state.ladderId !== null) {
    loadLadder(state.ladderId, state.payload, { onFocus }).then((job) => { state.ladder = job && job.ladder; });
  }
}

function toast(text) {
  byId('toasts').append(h('div', { class: 'toast', role: 'status' }, text));
}

// -- live updates ----------------------------------------------------------------------------

function schedulePoll() {
  clearTimeout(state.pollTimer);
  const live = byId('live');
  clear(live);
  if ((state.share && state.share.frozen) || !anyRunning(state.runs)) return;
  live.append(h('span', { class: 'dot' }), `live · ${state.runs.filter((r) => r.status === 'running').length} running`);
  state.pollTimer = setTimeout(poll, pollMs);
}

async function poll() {
  let latest;
  try {
    latest = shareToken
      ? await api.shareRuns(shareToken)
      : (await Promise.all(comparedRunIds().map((id) => api.run(id))))
        .map((r) => ({ id: r.id, name: r.name, status: r.status, last_step: r.last_step }));
  } catch {
    schedulePoll(); // a missed poll is retried; the page keeps what it shows
    return;
  }
  const { changed, finished } = runChanges(state.runs, latest);
  for (const run of finished) toast(`${run.name} ${run.status} at step ${run.last_step ?? '—'}`);
  if (changed) await refresh();
  else state.runs = latest;
  schedulePoll();
}

// -- actions ---------------------------------------------------------------------------------

async function addNote(event) {
  event.preventDefault();
  const error = byId('note-error');
  error.textContent = '';
  const step = Number(byId('note-step').value);
  const text = byId('note-text').value;
  try {
    await api.addNote(comparedRunIds(), step, text);
  } catch (e) {
    error.textContent = e.status === 401 ? 'Pinning a note needs a write token: enter one above.' : e.message;
    return;
  }
  byId('note-text').value = '';
  state.notes = await api.notes(comparedRunIds());
  renderNotes();
  await drawPanels();
}

async function deleteNote(id) {
  try {
    await api.deleteNote(id);
  } catch (e) {
    byId('note-error').textContent = e.message;
    return;
  }
  state.notes = state.notes.filter((n) => n.id !== id);
  renderNotes();
  await drawPanels();
}

async function createShare() {
  // The link shows what the page draws: the runs and metrics the server found.
  const shown = { ...state.view, reference: state.payload.references, candidates: state.payload.candidates, metrics: shownMetrics() };
  const made = await makeShareLink(byId('share-result'), {
    view: { ...toShareView(shown), ...(state.ladderId !== null ? { ladder: state.ladderId } : {}) },
    frozen: byId('share-freeze').checked,
    expires_in_hours: byId('share-expiry').value ? Number(byId('share-expiry').value) : null,
  });
  if (made) await loadWriteAccess();
}

// Whether the stored token may write to the runs' project, learnt from the comparison's list of
// share links, which needs exactly that (docs/API.md, GET /api/v1/shares); with no token the page
// does not ask. The list is shown when it has links, and the editing controls when it came.
async function loadWriteAccess() {
  delete document.body.dataset.access;
  let links = null;
  if (!shareToken && api.getToken() && state.payload) {
    try {
      links = await api.sharesOf(state.payload.references, state.payload.candidates);
    } catch {
      links = null; // 401 or 403: read-only for this token
    }
  }
  state.canWrite = links !== null;
  document.body.dataset.access = state.canWrite ? 'write' : 'read';
  renderEditing();
  renderNotes();
  if (!links) return;
  byId('share-links').classList.toggle('hidden', !links.length);
  renderShareList(byId('share-list'), links, loadWriteAccess);
}

async function exportCsv() {
  try {
    await downloadCsv(state.payload, state.view, { canFetch: !shareToken });
  } catch (e) {
    setStatus(`export failed: ${e.message}`, true);
  }
}

async function exportHtml() {
  const button = byId('export-html');
  button.disabled = true;
  try {
    const made = state.share ? new Date(state.share.created_at) : new Date();
    await downloadHtml({
      title: `ParityScope: ${document.title.replace(/ · ParityScope$/, '')}`,
      subtitle: `Exported ${new Date().toLocaleString()}; data as of ${made.toLocaleString()}. `
        + `Smoothing ${state.view.smoothing}, ${state.view.mode} mode.`,
      plots: state.view.metrics.map((metric) => state.panels.get(metric)).filter(Boolean).map((p) => p.plot),
      sections: ['ladder-section', 'diagnosis-section', 'config-section', 'notes-section'].map(byId),
      plotlyUrl: byId('plotly-js').href,
    });
  } catch (e) {
    setStatus(`export failed: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

async function loadMetricOptions() {
  if (state.metricOptionsLoaded) return;
  state.metricOptionsLoaded = true;
  const select = byId('metric-choice');
  const names = new Set([...DEFAULT_METRICS, ...META.compare.parity_metrics]);
  try {
    const keyLists = await Promise.all(comparedRunIds().map((id) => api.runKeys(id)));
    keyLists.flat().forEach((k) => names.add(k.key));
  } catch {
    /* the canonical names are still offered */
  }
  for (const name of [...names].sort()) {
    if (!state.view.metrics.includes(name)) offerMetric(name);
  }
}

// Puts `metric` back in the menu, in order, once the menu has its options (a panel removed
// after the menu was filled can be added again).
function offerMetric(metric) {
  const select = byId('metric-choice');
  if (!state.metricOptionsLoaded || select.querySelector(`option[value="${CSS.escape(metric)}"]`)) return;
  const after = [...select.options].find((option) => option.value && option.value > metric);
  select.insertBefore(h('option', { value: metric }, metric), after || null);
}

async function addMetric() {
  const select = byId('metric-choice');
  const metric = select.value;
  if (!metric || state.view.metrics.includes(metric)) return;
  select.querySelector(`option[value="${CSS.escape(metric)}"]`)?.remove();
  select.value = '';
  state.view.metrics.push(metric);
  syncUrl();
  await refresh();
}

function toggleAllConfig(event) {
  state.configEvery = event.target.checked;
  renderConfig();
}

function wireControls() {
  const smoothing = byId('smoothing');
  const settle = () => {
    clearTimeout(state.smoothingTimer);
    state.smoothingTimer = setTimeout(async () => {
      if (Number(smoothing.value) === state.view.smoothing) return;
      state.view.smoothing = Number(smoothing.value);
      syncUrl();
      await refresh();
    }, SETTLE_MS);
  };
  smoothing.addEventListener('input', () => {
    byId('smoothing-value').textContent = Number(smoothing.value).toFixed(2);
    settle();
  });
  smoothing.addEventListener('change', settle);
  for (const id of ['mode-overlay', 'mode-diff']) {
    byId(id).addEventListener('change', async (event) => {
      state.view.mode = event.target.value;
      renderControls();
      syncUrl();
      if (hasFigures(state.payload, state.view)) await drawPanels();
      else await refresh();
    });
  }
  for (const id of ['x-step', 'x-time']) {
    byId(id).addEventListener('change', async (event) => {
      state.view.xAxis = event.target.value;
      // A range in steps means nothing in seconds, and back.
      state.view.xRange = null;
      renderXAxis();
      syncUrl();
      await drawPanels();
    });
  }
  byId('reset-zoom').addEventListener('click', () => {
    state.view.xRange = null;
    syncUrl();
    drawPanels();
  });
  byId('metric-choice').addEventListener('focus', loadMetricOptions);
  byId('metric-add').addEventListener('click', addMetric);
  byId('export-csv').addEventListener('click', exportCsv);
  byId('export-html').addEventListener('click', exportHtml);
  byId('share').addEventListener('click', createShare);
  byId('note-form').addEventListener('submit', addNote);
  byId('config-all').addEventListener('change', toggleAllConfig);
}

async function init() {
  mountTokenBar(byId('token-bar'), async () => {
    if (!shareToken && await refresh()) await loadWriteAccess();
  });
  wireControls();
  if (!shareToken) {
    const { view, errors } = parseView(window.location.search);
    state.view = view;
    state.view.hidden = [];
    state.view.fitAll = [];
    if (!view.reference.length) {
      setStatus('');
      byId('status').append(errors.join('; '), ' — ', h('a', { href: '/' }, 'pick runs on a project’s runs page'));
      byId('status').className = 'error';
      return;
    }
    if (errors.length) toast(`Ignored: ${errors.join('; ')}`);
    renderControls();
  }
  if (await refresh()) {
    schedulePoll();
    if (!shareToken) loadWriteAccess();
  }
}

init();
