// The parity ladder on the compare page (docs/LADDER.md): one row per rung and ablation leg, one
// cell per metric (at parity, or the step it leaves the band) in the diagnosis's verdict colours,
// the closing rung and the patch; a click on a row overlays that row's runs on the panels.
// Also the Bisect button on each diverging candidate. Text nodes only (dom.js).
import * as api from './api.js';
import { append, byId, clear, h } from './dom.js';
import { formatNumber } from './shaping.js';

const CANONICAL = ['clip_rate', 'kl', 'entropy', 'reward'];
const PARITY = ['logprob_diff_mean', 'logprob_abs_diff_mean', 'logprob_abs_diff_max', 'weight_version_lag'];

const ladderState = { ladder: null, jobId: null, focus: null, onFocus: null };

/** The ladder's job id from the page address (`ladder=<id>`), or null. */
export function ladderIdFromSearch(search) {
  const raw = new URLSearchParams(search).get('ladder');
  return raw && /^\d+$/.test(raw) ? Number(raw) : null;
}

/** The compare address that shows every run of a ladder, with the ladder under the panels. */
export function ladderCompareUrl(jobId, ladder) {
  const reference = ladder.reference.run_ids;
  const candidates = [...new Set([...ladder.rungs, ...ladder.ablation].flatMap((row) => row.run_ids))];
  return `/compare?reference=${reference.join(',')}&candidates=${candidates.join(',')}&ladder=${jobId}`;
}

function cellText(verdict) {
  if (!verdict || verdict.at_parity === null || verdict.at_parity === undefined) return '—';
  if (verdict.at_parity) return 'parity';
  return `step ${verdict.first_divergence_step}`;
}

function cellClass(verdict) {
  if (!verdict || verdict.at_parity === null || verdict.at_parity === undefined) return 'unknown';
  return verdict.at_parity ? 'pass' : 'fail';
}

function cellTitle(metric, verdict) {
  if (!verdict) return `${metric}: no verdict yet`;
  const parts = [`${metric}: ${verdict.at_parity ? 'inside the reference band' : 'leaves the reference band'}`];
  if (verdict.first_divergence_step !== null) parts.push(`from step ${verdict.first_divergence_step}`);
  if (verdict.effect_size !== null) parts.push(`${formatNumber(verdict.effect_size)} half-widths beyond the band`);
  if (verdict.departure !== null) parts.push(`mean distance ${formatNumber(verdict.departure)} half-widths`);
  return parts.join(', ');
}

function rowName(row, kind) {
  if (kind === 'ablation') return `ablation: ${row.setting}=${String(row.value)} alone`;
  return row.index === 0 ? 'rung 0: the candidate' : `rung ${row.index}: + ${row.applied.join(', ')}`;
}

function rowOf(row, kind, ladder, metrics, focusable) {
  const closing = ladder.closing && kind === 'rung' && ladder.closing.rung === row.index;
  const key = kind === 'rung' ? `rung-${row.index}` : `ablation-${row.setting}`;
  const layer = kind === 'ablation' ? row.layer
    : (ladder.plan.differences.find((d) => row.applied.includes(d.setting)) || {}).layer || 'candidate';
  const tr = h('tr', {
    class: `ladder-row${closing ? ' closing' : ''}${ladderState.focus === key ? ' focused' : ''}${focusable ? ' clickable' : ''}`,
    dataset: { row: key, status: row.status, layer, runs: row.run_ids.join(',') },
    title: focusable ? 'click: overlay this row’s runs on the panels' : undefined,
    onclick: focusable ? () => focusRow(key, row.run_ids) : undefined,
  },
  h('td', {}, rowName(row, kind), closing ? h('span', { class: 'start-here' }, ' ← closes the gap') : null),
  h('td', { class: 'muted' }, layer),
  h('td', {}, row.status),
  metrics.map((m) => {
    const verdict = row.metrics[m];
    return h('td', { class: `cell ${cellClass(verdict)}`, dataset: { metric: m }, title: cellTitle(m, verdict) },
      h('span', { class: `badge ${cellClass(verdict)}` }, cellText(verdict)));
  }));
  return tr;
}

function patchNode(ladder) {
  const patch = ladder.patch;
  if (!patch) return null;
  const vllm = patch.vllm;
  return h('div', { class: 'ladder-patch', id: 'ladder-patch' },
    h('h3', {}, 'Config patch'),
    h('pre', { class: 'mono' }, JSON.stringify(patch.engine_settings, null, 2)),
    vllm && vllm.engine_args ? [
      h('h3', {}, `${vllm.engine}: engine arguments`),
      h('pre', { class: 'mono' }, Object.entries(vllm.engine_args).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',\n') || '(none)'),
      vllm.weight_update_calls ? [h('h3', {}, 'AsyncLLM around a weight update'),
        h('pre', { class: 'mono' }, JSON.stringify(vllm.weight_update_calls, null, 2))] : null,
      vllm.sampling_params ? [h('h3', {}, 'SamplingParams (the workload’s)'),
        h('pre', { class: 'mono' }, JSON.stringify(vllm.sampling_params, null, 2))] : null,
    ] : null);
}

function focusRow(key, runIds) {
  ladderState.focus = ladderState.focus === key ? null : key;
  for (const tr of document.querySelectorAll('#ladder tr.ladder-row')) {
    tr.classList.toggle('focused', tr.dataset.row === ladderState.focus);
  }
  if (ladderState.onFocus) ladderState.onFocus(ladderState.focus ? runIds.map(String) : null);
}

/**
 * A panel figure with only the focused row's runs among the candidates (the reference and its
 * band stay); the other candidates stay in the legend, hidden.
 */
export function focusFigure(figure, payload, focusRuns) {
  if (!figure || !focusRuns) return figure;
  const candidates = new Set((payload.candidates || []).map(String));
  const hiddenColours = new Set();
  const shownColours = new Set();
  for (const trace of figure.data) {
    const run = trace.legendgroup === undefined ? null : String(trace.legendgroup);
    if (!run || !candidates.has(run)) continue;
    const colour = trace.line && trace.line.color;
    if (focusRuns.includes(run)) shownColours.add(colour);
    else {
      trace.visible = 'legendonly';
      hiddenColours.add(colour);
    }
  }
  // Colours repeat after the palette's length: keep what a focused run's colour marks.
  for (const colour of shownColours) hiddenColours.delete(colour);
  // A hidden candidate's divergence marker (a line and a label in its colour) goes with it.
  figure.layout.shapes = (figure.layout.shapes || []).filter((s) => !(s.line && hiddenColours.has(s.line.color)));
  figure.layout.annotations = (figure.layout.annotations || []).filter((a) => !(a.font && hiddenColours.has(a.font.color)));
  return figure;
}

/** Draws the ladder into #ladder-section; `onFocus(runIds | null)` redraws the panels. */
export function renderLadder(ladder, jobId, payload, { onFocus, shared = false } = {}) {
  ladderState.ladder = ladder;
  ladderState.jobId = jobId;
  ladderState.onFocus = onFocus;
  const section = byId('ladder-section');
  const container = clear(byId('ladder'));
  if (!ladder) {
    section.classList.add('hidden');
    return;
  }
  section.classList.remove('hidden');
  const shown = new Set([...(payload.reference || []), ...(payload.candidates || [])].map(String));
  const rows = [...ladder.rungs.map((r) => [r, 'rung']), ...ladder.ablation.map((r) => [r, 'ablation'])];
  const metrics = [...CANONICAL, ...PARITY.filter((m) => rows.some(([r]) => r.metrics[m]))];
  const missing = rows.some(([r]) => r.run_ids.some((id) => !shown.has(String(id))));
  append(container,
    h('p', { id: 'ladder-summary' },
      h('strong', {}, `Job ${jobId}: ${ladder.leg_count} legs · ${ladder.status}`),
      ladder.closing ? [' · closing rung ', h('strong', { id: 'ladder-closing' },
        `${ladder.closing.rung}${ladder.closing.settings.length ? ` (${ladder.closing.settings.join(', ')})` : ''}`)] : null),
    h('table', { class: 'kv ladder-table', id: 'ladder-table' },
      h('tr', {}, h('th', {}, 'row'), h('th', {}, 'layer'), h('th', {}, 'status'), metrics.map((m) => h('th', {}, m))),
      rows.map(([row, kind]) => rowOf(row, kind, ladder, metrics, row.run_ids.length > 0 && row.run_ids.every((id) => shown.has(String(id)))))),
    h('ul', { class: 'ladder-words', id: 'ladder-words' }, ladder.interpretation.map((s) => h('li', {}, s))),
    patchNode(ladder),
    missing && !shared ? h('p', {}, h('a', { href: ladderCompareUrl(jobId, ladder), id: 'ladder-open' }, 'Show every rung’s runs on the panels')) : null);
}

/** Loads the ladder job named in the address (live pages) and draws it. */
export async function loadLadder(jobId, payload, options) {
  try {
    const job = await api.job(jobId);
    renderLadder(job.ladder, jobId, payload, options);
    return job;
  } catch (error) {
    byId('ladder-section').classList.remove('hidden');
    clear(byId('ladder')).append(h('p', { class: 'error' }, `ladder ${jobId}: ${error.message}`));
    return null;
  }
}

// Whether a run came from a job leg (its idempotency key, storage/jobs.py), asked once per run.
const fromJob = new Map();

async function cameFromJob(id) {
  if (!fromJob.has(id)) {
    fromJob.set(id, api.run(id).then((run) => /^job-\d+-leg-\d+$/.test(run.external_id || '')).catch(() => false));
  }
  return fromJob.get(id);
}

/**
 * A Bisect button under each diverging candidate's diagnosis, for runs that came from a job
 * (a ladder reruns their recorded legs): shows the leg count, then starts.
 */
export async function addBisectButtons(payload, view) {
  for (const id of payload.candidates || []) {
    const diagnosis = payload.diagnosis && payload.diagnosis[String(id)];
    const block = document.querySelector(`.diagnosis[data-candidate="${CSS.escape(String(id))}"]`);
    if (!diagnosis || !block || block.querySelector('.bisect')) continue;
    const diverging = Object.values(payload.metrics || {}).some((m) => {
      const c = m.candidates && m.candidates[String(id)];
      return c && c.first_divergence_step !== null && c.first_divergence_step !== undefined;
    });
    if (!diverging || !(await cameFromJob(String(id)))) continue;
    if (block.querySelector('.bisect') || !block.isConnected) continue;
    const out = h('span', { class: 'bisect-out' });
    const body = { reference: view.reference.map(Number), candidate: Number(id) };
    const start = async () => {
      try {
        const job = await api.createLadder(body);
        window.location.assign(`/compare?reference=${view.reference.join(',')}&candidates=${view.candidates.join(',')}&ladder=${job.id}`);
      } catch (error) {
        clear(out).append(h('span', { class: 'error' }, error.message));
      }
    };
    const ask = async () => {
      clear(out).append('…');
      try {
        const plan = await api.createLadder({ ...body, dry_run: true });
        clear(out).append(` ${plan.leg_count} legs (${plan.plan.rungs.length} rungs, ${plan.plan.replicas} reference runs) `,
          h('button', { type: 'button', class: 'primary bisect-start', onclick: start }, `Start ${plan.leg_count} legs`));
      } catch (error) {
        clear(out).append(h('span', { class: 'error' }, error.status === 401 ? 'Bisecting needs a write token: enter one above.' : error.message));
      }
    };
    block.append(h('p', { class: 'bisect' },
      h('button', { type: 'button', class: 'bisect-ask', title: 'rerun the candidate one reference setting at a time', onclick: ask }, 'Bisect'), out));
  }
}
