// What the compare page's buttons make: a share link (shown once, with Copy and Revoke), a CSV of
// the series shown, and a self-contained HTML file of the comparison.
import * as api from './api.js';
import * as chart from './chart.js';
import { clear, download, h } from './dom.js';
import { seriesCsv, standaloneHtml } from './shaping.js';

/** POST a share link for `body` and show it in `container`. */
export async function makeShareLink(container, body) {
  clear(container).classList.remove('hidden');
  let link;
  try {
    link = await api.createShare(body);
  } catch (e) {
    container.append(h('span', { class: 'error', id: 'share-error' },
      e.status === 401 ? 'Sharing needs a write token: enter one above.' : e.message));
    return;
  }
  const url = `${window.location.origin}${link.url}`;
  const input = h('input', { type: 'text', readonly: true, value: url, id: 'share-url', 'aria-label': 'share link' });
  const revoke = h('button', { type: 'button', id: 'share-revoke' }, 'Revoke');
  revoke.addEventListener('click', async () => {
    try {
      await api.revokeShare(link.id);
      revoke.disabled = true;
      revoke.textContent = 'Revoked';
    } catch (e) {
      container.append(h('span', { class: 'error' }, e.message));
    }
  });
  container.append(
    h('span', {}, link.frozen ? 'Frozen link:' : 'Live link:'), input,
    h('button', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(url) }, 'Copy'),
    h('a', { href: link.url, target: '_blank', rel: 'noopener' }, 'open'), revoke,
    h('span', { class: 'muted' }, 'The link is shown once; anyone who has it can read this comparison until it is revoked or expires.'));
  input.select();
}

/**
 * Download the CSV of the series shown. The panels' payload carries figures only, so the series
 * are asked for when missing (`canFetch`); a share link's payload has them already.
 */
export async function downloadCsv(payload, view, { canFetch }) {
  const hasSeries = Object.values(payload.metrics || {}).some((m) => (m.series || []).some((s) => s.x));
  const source = !hasSeries && canFetch ? await api.compare(view, 'series') : payload;
  download(new Blob([seriesCsv(source, view)], { type: 'text/csv' }), 'parityscope-comparison.csv');
}

/** Download the comparison as one HTML file that opens offline: Plotly.js inlined, the figures
 * as drawn, and copies of the page's `sections` without their controls. */
export async function downloadHtml({ title, subtitle, plots, sections, plotlyUrl }) {
  const plotlyJs = await api.plotlySource(plotlyUrl);
  const figures = plots.filter((plot) => plot.data).map((plot) => chart.drawnFigure(plot));
  const sectionsHtml = sections.map((section) => {
    const copy = section.cloneNode(true);
    copy.querySelectorAll('form, button, input, #config-all-toggle, #config-all-view').forEach((n) => n.remove());
    copy.querySelectorAll('details').forEach((n) => n.setAttribute('open', ''));
    return copy.outerHTML;
  });
  const html = standaloneHtml({ title, subtitle, plotlyJs, figures, sectionsHtml: sectionsHtml.join('\n') });
  download(new Blob([html], { type: 'text/html' }), 'parityscope-comparison.html');
}
