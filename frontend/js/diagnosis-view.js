// The diagnosis panel and the config table, drawn from the compare payload (text nodes only).
// The server words every fact (three significant digits, units) and defines every quantity
// (docs/COMPARE.md, "Verdicts and their evidence"); the page shows them as they come.
import { clear, h } from './dom.js';
import { candidateMarkers, configTable } from './shaping.js';

function runName(payload, id) {
  const run = payload.runs && payload.runs[String(id)];
  return run ? run.name : `run ${id}`;
}

// A fact with a defined quantity carries its definition as a tooltip (`title`) and, for screen
// readers and keyboards, as a description that shows while the fact has focus.
function factItem(fact, id) {
  if (!fact.definition) return h('li', { class: 'fact' }, fact.fact);
  return h('li', { class: 'fact defined', tabindex: '0', title: fact.definition, 'aria-describedby': id },
    fact.fact,
    h('span', { class: 'definition', id, role: 'tooltip' }, fact.definition));
}

function verdictItem(verdict, start, candidateId) {
  const facts = verdict.facts || [];
  const prefix = `fact-${candidateId}-${verdict.layer}`;
  return h('li', {
    class: `${verdict.verdict}${verdict.layer === start ? ' start' : ''}`,
    dataset: { layer: verdict.layer, verdict: verdict.verdict },
  },
  h('span', { class: 'layer' }, verdict.layer), h('span', { class: `badge ${verdict.verdict}` }, verdict.verdict),
  verdict.layer === start ? h('span', { class: 'start-here' }, '← start here') : null,
  h('div', { class: 'sentence' }, verdict.sentence),
  facts.length ? h('ul', { class: 'facts', 'aria-label': `${verdict.layer}: the facts that decided it` },
    facts.map((fact, i) => factItem(fact, `${prefix}-${i}`))) : null);
}

// The charts' markers for one candidate, in words, for those who cannot hover a chart.
function markerList(payload, candidateId) {
  const markers = candidateMarkers(payload, candidateId);
  if (!markers.length) return null;
  return h('div', { class: 'band-exits' },
    h('h4', {}, 'Where it leaves the reference band'),
    h('ul', { class: 'facts' }, markers.map((marker, i) => {
      const id = `marker-${candidateId}-${i}`;
      const props = marker.definition
        ? { class: 'fact defined', tabindex: '0', title: marker.definition, 'aria-describedby': id, dataset: { metric: marker.metric, step: marker.step } }
        : { class: 'fact', dataset: { metric: marker.metric, step: marker.step } };
      return h('li', props, marker.summary,
        marker.detail ? h('span', { class: 'muted detail' }, ` (${marker.detail})`) : null,
        marker.definition ? h('span', { class: 'definition', id, role: 'tooltip' }, marker.definition) : null);
    })));
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
    const unclassified = diagnosis.unclassified_keys || [];
    container.append(h('div', { class: 'diagnosis', dataset: { candidate: id } },
      h('h3', {}, runName(payload, id), ' ',
        start ? h('span', { class: 'start-here' }, `start with: ${start}`) : h('span', { class: 'muted' }, 'no failing layer')),
      diagnosis.like_for_like === false ? h('p', { class: 'error' }, 'Not like-for-like: the workload differs.') : null,
      h('ol', { class: 'verdicts' }, diagnosis.verdicts.map((v) => verdictItem(v, start, id))),
      markerList(payload, id),
      unclassified.length
        ? h('p', { class: 'muted unclassified' }, 'Keys no rule classifies (judged by no layer): ',
          h('span', { class: 'mono' }, unclassified.join(', ')))
        : null));
  }
}

const EXPECTED_NOTE = 'expected: differs among replicas by design';

function configRow(row) {
  return h('tr', {
    class: [row.differs ? 'differs' : '', row.expected ? 'expected' : ''].filter(Boolean).join(' ') || null,
    dataset: { key: row.key, differs: String(row.differs), expected: String(row.expected) },
  },
  h('td', { class: 'mono' }, row.key,
    row.expected ? h('span', { class: 'expected-note', title: 'Every leg samples with its own seed; the reference band spans that variation, so it fails no layer.' }, EXPECTED_NOTE) : null),
  h('td', { class: 'mono', title: row.perReplica ? 'each reference replica’s value' : null }, row.reference),
  h('td', { class: 'mono' }, row.candidate));
}

/**
 * The config table of each candidate against the reference, by layer: the keys that differ, or
 * with `every` every key (differing rows highlighted). One table either way.
 */
export function renderConfigTable(container, payload, every = false) {
  clear(container);
  container.dataset.every = String(every);
  for (const id of payload.candidates || []) {
    const groups = configTable(payload, id, every);
    const differing = groups.some((g) => g.entries.some((row) => row.differs && !row.expected));
    const section = h('div', { class: 'config-candidate', dataset: { candidate: id } },
      h('h3', {}, `${runName(payload, id)} vs reference`));
    container.append(section);
    if (!groups.length) {
      section.append(h('p', { class: 'muted' }, every ? 'No configuration recorded.' : 'No setting differs.'));
      continue;
    }
    if (!every && !differing) {
      section.append(h('p', { class: 'muted' }, 'No setting differs beyond what differs among replicas by design.'));
    }
    for (const group of groups) {
      section.append(h('div', { class: 'config-layer', dataset: { layer: group.layer } },
        h('strong', {}, group.layer),
        h('table', { class: 'kv config-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'key'), h('th', {}, 'reference'), h('th', {}, 'candidate'))),
          h('tbody', {}, group.entries.map(configRow)))));
    }
  }
}
