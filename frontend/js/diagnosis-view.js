// The diagnosis panel and the config diff, built from the compare payload (text nodes only).
import { clear, h } from './dom.js';
import { formatNumber, formatValue, groupConfigDiff } from './shaping.js';

const KEY_LISTS = { differing_keys: 'differing keys', engine: 'engine', varies_among_references: 'varies among reference replicas' };

function runName(payload, id) {
  const run = payload.runs && payload.runs[String(id)];
  return run ? run.name : `run ${id}`;
}

function keyTable(entries) {
  return h('table', { class: 'kv' },
    h('tr', {}, h('th', {}, 'key'), h('th', {}, 'reference'), h('th', {}, 'candidate')),
    entries.map((e) => h('tr', {},
      h('td', { class: 'mono' }, e.key),
      h('td', { class: 'mono' }, formatValue(e.reference_value)),
      h('td', { class: 'mono' }, formatValue(e.candidate_value)))));
}

function parityTable(parity) {
  const names = new Set([...Object.keys(parity.candidate || {}), ...Object.keys(parity.reference || {})]);
  const findings = Object.entries(parity).filter(([k, v]) => !['candidate', 'reference', 'notes'].includes(k) && v !== undefined);
  return h('div', {},
    findings.length ? h('p', { class: 'mono' }, findings.map(([k, v]) => `${k}: ${v === null ? 'unknown' : v}`).join(' · ')) : null,
    names.size ? h('table', { class: 'kv' },
      h('tr', {}, h('th', {}, 'parity metric'), h('th', {}, 'reference'), h('th', {}, 'candidate')),
      [...names].map((name) => h('tr', {},
        h('td', { class: 'mono' }, name),
        h('td', { class: 'mono' }, formatNumber((parity.reference || {})[name] ?? '—')),
        h('td', { class: 'mono' }, formatNumber((parity.candidate || {})[name] ?? '—'))))) : null,
    (parity.notes || []).map((note) => h('p', { class: 'muted' }, note)));
}

function divergenceTable(divergence) {
  return h('table', { class: 'kv' },
    h('tr', {}, h('th', {}, 'metric'), h('th', {}, 'leaves the band at step'), h('th', {}, 'effect size'), h('th', {}, 'direction')),
    Object.entries(divergence).map(([metric, d]) => h('tr', {},
      h('td', {}, metric), h('td', { class: 'mono' }, d.first_divergence_step),
      h('td', { class: 'mono' }, formatNumber(d.effect_size ?? '—')), h('td', {}, d.direction || '—'))));
}

function evidenceNode(evidence) {
  const parts = [];
  for (const [key, value] of Object.entries(evidence || {})) {
    if (value === null || (Array.isArray(value) && !value.length) || (typeof value === 'object' && !Object.keys(value).length)) continue;
    if (KEY_LISTS[key] && Array.isArray(value)) parts.push(h('h3', {}, KEY_LISTS[key]), keyTable(value));
    else if (key === 'parity' && typeof value === 'object') parts.push(h('h3', {}, 'parity metrics'), parityTable(value));
    else if (key === 'divergence' && typeof value === 'object') parts.push(h('h3', {}, 'divergence'), divergenceTable(value));
    else parts.push(h('h3', {}, key), h('pre', {}, JSON.stringify(value, null, 2)));
  }
  return parts.length ? h('details', {}, h('summary', {}, 'evidence'), parts) : null;
}

export function renderDiagnosis(container, payload) {
  clear(container);
  const candidates = payload.candidates || [];
  if (!candidates.length) {
    container.append(h('p', { class: 'muted' }, 'Add a candidate to diagnose it against the reference.'));
    return;
  }
  for (const id of candidates) {
    const diagnosis = payload.diagnosis && payload.diagnosis[String(id)];
    if (!diagnosis) continue;
    const start = diagnosis.starting_layer;
    container.append(h('div', { class: 'diagnosis', dataset: { candidate: id } },
      h('h3', {}, runName(payload, id), ' ',
        start ? h('span', { class: 'start-here' }, `start with: ${start}`) : h('span', { class: 'muted' }, 'no failing layer')),
      diagnosis.like_for_like === false ? h('p', { class: 'error' }, 'Not like-for-like: the workload differs.') : null,
      h('ol', { class: 'verdicts' }, diagnosis.verdicts.map((v) => h('li', {
        class: `${v.verdict}${v.layer === start ? ' start' : ''}`, dataset: { layer: v.layer, verdict: v.verdict },
      },
      h('span', { class: 'layer' }, v.layer), h('span', { class: `badge ${v.verdict}` }, v.verdict),
      v.layer === start ? h('span', { class: 'start-here' }, '← start here') : null,
      h('div', {}, v.sentence),
      evidenceNode(v.evidence)))),
      diagnosis.unclassified_keys && diagnosis.unclassified_keys.length
        ? h('p', { class: 'muted' }, 'Unclassified keys: ', h('span', { class: 'mono' }, diagnosis.unclassified_keys.join(', ')))
        : null));
  }
}

export function renderConfigDiff(container, payload) {
  clear(container);
  for (const id of payload.candidates || []) {
    const groups = groupConfigDiff((payload.config_diff || {})[String(id)]);
    container.append(h('h3', {}, `${runName(payload, id)} vs reference`));
    if (!groups.length) {
      container.append(h('p', { class: 'muted' }, 'No setting differs.'));
      continue;
    }
    for (const group of groups) {
      container.append(h('div', { class: 'config-layer', dataset: { layer: group.layer } },
        h('strong', {}, group.layer),
        h('table', { class: 'kv' },
          h('tr', {}, h('th', {}, 'key'), h('th', {}, 'reference'), h('th', {}, 'candidate')),
          group.entries.map((e) => h('tr', {},
            h('td', { class: 'mono' }, e.key, e.varies_among_references ? h('span', { class: 'muted' }, ' (varies among replicas)') : null),
            h('td', { class: 'mono' }, formatValue(e.reference_value)),
            h('td', { class: 'mono' }, formatValue(e.candidate_value)))))));
    }
  }
}

/** Every run's full config and engine, as stored. */
export function renderAllConfig(container, runs) {
  clear(container);
  for (const run of runs) {
    container.append(h('h3', {}, `${run.name}`),
      h('pre', {}, JSON.stringify({ config: run.config, engine: run.engine }, null, 2)));
  }
}
