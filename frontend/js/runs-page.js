// The runs page of one project: filters, cursor paging, sparklines, and picking a reference
// (or replicas) and candidates for the compare page.
import * as api from './api.js';
import { byId, clear, h, svg } from './dom.js';
import { sparklinePoints } from './shaping.js';
import { mountTokenBar } from './tokenbar.js';

const PAGE_SIZE = 50;
const SPARK = { width: 120, height: 28 };

const slug = decodeURIComponent(window.location.pathname.split('/')[2] || '');
const params = new URLSearchParams(window.location.search);
const state = {
  q: params.get('q') || '',
  tag: params.get('tag') || '',
  status: params.get('status') || '',
  cursors: [null], // cursor of each page visited; the last one is the page shown
  next: null,
  loading: 0,
};
// run id → {name, role: 'reference' | 'candidate'}; survives paging and filtering.
const picked = new Map();

function syncUrl() {
  const search = new URLSearchParams();
  for (const key of ['q', 'tag', 'status']) if (state[key]) search.set(key, state[key]);
  const text = search.toString();
  window.history.replaceState(null, '', window.location.pathname + (text ? `?${text}` : ''));
}

function sparkline(line) {
  const points = sparklinePoints(line.x, line.y, SPARK.width, SPARK.height);
  if (!points) return h('span', { class: 'muted' }, '—');
  const title = `${line.metric}${line.key && line.key !== line.metric ? ` (${line.key})` : ''}`;
  return svg('svg', { class: 'spark', width: SPARK.width, height: SPARK.height, viewBox: `0 0 ${SPARK.width} ${SPARK.height}`, role: 'img', 'aria-label': title },
    svg('title', { text: title }), svg('polyline', { points }));
}

function engineText(run) {
  const engine = run.engine || {};
  const parts = [engine.name, engine.version].filter(Boolean).join(' ');
  return [parts, run.label].filter(Boolean).join(' · ') || '—';
}

function pickBox(run, role) {
  return h('input', {
    type: 'checkbox', class: `pick-${role}`, 'aria-label': `${role} ${run.name}`,
    checked: picked.get(run.id)?.role === role,
    onchange: (event) => {
      if (event.target.checked) picked.set(run.id, { name: run.name, role });
      else picked.delete(run.id);
      renderRows(lastRuns);
      renderSelection();
    },
  });
}

let lastRuns = [];

function renderRows(runs) {
  lastRuns = runs;
  const body = clear(byId('rows'));
  for (const run of runs) {
    const created = new Date(run.created_at);
    body.append(h('tr', { class: picked.has(run.id) ? 'selected' : '', dataset: { runId: run.id } },
      h('td', { class: 'pick' }, pickBox(run, 'reference')),
      h('td', { class: 'pick' }, pickBox(run, 'candidate')),
      h('td', { class: 'name' }, run.name),
      h('td', {}, h('span', { class: `status ${run.status}` }, run.status)),
      h('td', {}, engineText(run)),
      h('td', {}, run.tags.map((tag) => h('span', {
        class: 'tag', title: `show runs tagged ${tag}`,
        onclick: () => { byId('filter-tag').value = tag; applyFilters(); },
      }, tag))),
      h('td', { title: created.toISOString() }, created.toLocaleString()),
      h('td', { class: 'num' }, run.last_step ?? '—'),
      h('td', {}, sparkline(run.sparkline)),
      h('td', { class: 'open' }, h('a', { href: `/runs/${Number(run.id)}`, 'aria-label': `open run ${run.name}` }, 'files')),
    ));
  }
}

function renderSelection() {
  const references = [...picked].filter(([, p]) => p.role === 'reference');
  const candidates = [...picked].filter(([, p]) => p.role === 'candidate');
  const text = byId('selection-text');
  clear(text);
  if (!picked.size) {
    text.append('Pick one reference (or several replicas) and candidates.');
  } else {
    text.append(
      h('strong', {}, references.length > 1 ? 'References (replicas): ' : 'Reference: '),
      references.map(([, p]) => p.name).join(', ') || '—',
      '  ·  ', h('strong', {}, 'Candidates: '), candidates.map(([, p]) => p.name).join(', ') || '—',
    );
  }
  byId('compare').disabled = references.length === 0;
}

async function load() {
  const ticket = ++state.loading;
  const status = byId('status');
  status.textContent = 'Loading…';
  status.className = 'muted';
  try {
    const page = await api.runSummaries(slug, {
      q: state.q, tag: state.tag, status: state.status, limit: PAGE_SIZE,
      cursor: state.cursors[state.cursors.length - 1],
    });
    if (ticket !== state.loading) return; // a newer request is under way
    state.next = page.next_cursor;
    renderRows(page.runs);
    const first = (state.cursors.length - 1) * PAGE_SIZE + 1;
    byId('range').textContent = page.runs.length ? `runs ${first}–${first + page.runs.length - 1}` : '';
    status.textContent = page.runs.length ? '' : 'No runs match.';
    byId('newer').disabled = state.cursors.length <= 1;
    byId('older').disabled = !state.next;
  } catch (error) {
    if (ticket !== state.loading) return;
    renderRows([]);
    status.textContent = error.status === 401 ? 'This deployment needs a token to read: enter one above.' : error.message;
    status.className = 'error';
  }
}

function applyFilters() {
  state.q = byId('filter-q').value.trim();
  state.tag = byId('filter-tag').value.trim();
  state.status = byId('filter-status').value;
  state.cursors = [null];
  syncUrl();
  load();
}

function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

function init() {
  byId('crumbs').textContent = `${slug} › runs`;
  byId('title').textContent = `Runs of ${slug}`;
  document.title = `${slug} · runs · ParityScope`;
  byId('filter-q').value = state.q;
  byId('filter-tag').value = state.tag;
  byId('filter-status').value = state.status;
  const typed = debounce(applyFilters, 250);
  byId('filter-q').addEventListener('input', typed);
  byId('filter-tag').addEventListener('input', typed);
  byId('filter-status').addEventListener('change', applyFilters);
  byId('filters').addEventListener('submit', (event) => { event.preventDefault(); applyFilters(); });
  byId('filter-clear').addEventListener('click', () => {
    byId('filter-q').value = '';
    byId('filter-tag').value = '';
    byId('filter-status').value = '';
    applyFilters();
  });
  byId('older').addEventListener('click', () => { if (state.next) { state.cursors.push(state.next); load(); } });
  byId('newer').addEventListener('click', () => { if (state.cursors.length > 1) { state.cursors.pop(); load(); } });
  byId('selection-clear').addEventListener('click', () => { picked.clear(); renderRows(lastRuns); renderSelection(); });
  byId('compare').addEventListener('click', () => {
    const ids = (role) => [...picked].filter(([, p]) => p.role === role).map(([id]) => id);
    const candidates = ids('candidate');
    window.location.href = `/compare?reference=${ids('reference').join(',')}${candidates.length ? `&candidates=${candidates.join(',')}` : ''}`;
  });
  mountTokenBar(byId('token-bar'), load);
  renderSelection();
  load();
}

init();
