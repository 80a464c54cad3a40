// What the compare page's buttons make: a share link (shown once, with Copy) and the list of the
// comparison's links (each with Revoke), a CSV of
// the series shown, and a self-contained HTML file of the comparison.
import * as api from './api.js';
import * as chart from './chart.js';
import { clear, download, h } from './dom.js';
import { seriesCsv, standaloneHtml } from './shaping.js';

/**
 * POST a share link for `body` and show it in `container`, scrolled into view, with a Copy
 * button: the only time its address can be shown. Resolves with the link, or null if refused.
 */
export async function makeShareLink(container, body) {
  clear(container).classList.remove('hidden');
  let link;
  try {
    link = await api.createShare(body);
  } catch (e) {
    container.append(h('span', { class: 'error', id: 'share-error' },
      e.status === 401 ? 'Sharing needs a write token: enter one above.' : e.message));
    container.scrollIntoView({ block: 'center' });
    return null;
  }
  const url = `${window.location.origin}${link.url}`;
  const input = h('input', { type: 'text', readonly: true, value: url, id: 'share-url', 'aria-label': 'share link' });
  const copied = h('span', { class: 'muted', id: 'share-copied', role: 'status' });
  const copy = h('button', { type: 'button', id: 'share-copy' }, 'Copy');
  copy.addEventListener('click', async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(url);
      copied.textContent = 'copied';
    } catch {
      copied.textContent = 'selected: press Ctrl+C to copy';
    }
  });
  container.append(
    h('span', {}, link.frozen ? 'New frozen link:' : 'New live link:'), input, copy, copied,
    h('a', { href: link.url, target: '_blank', rel: 'noopener' }, 'open'),
    h('span', { class: 'muted' }, 'The address is shown once; anyone who has it can read this comparison until it is revoked or expires. Every link is listed below with its Revoke button.'));
  container.scrollIntoView({ block: 'center' });
  input.select();
  return link;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

/**
 * The comparison's share links as a table (made, expiry, frozen or live, state) with a Revoke
 * button on each link still open; `reload` is called after a revocation.
 */
export function renderShareList(container, links, reload) {
  clear(container);
  const now = Date.now();
  const rows = links.map((link) => {
    const expired = link.expires_at && new Date(link.expires_at).getTime() <= now;
    const stateText = link.revoked_at ? `revoked ${when(link.revoked_at)}` : expired ? 'expired' : 'open';
    const cell = h('td', {});
    if (!link.revoked_at && !expired) {
      const revoke = h('button', { type: 'button', class: 'share-revoke' }, 'Revoke');
      revoke.addEventListener('click', async () => {
        revoke.disabled = true;
        try {
          await api.revokeShare(link.id);
        } catch (e) {
          cell.append(h('span', { class: 'error' }, ` ${e.message}`));
          revoke.disabled = false;
          return;
        }
        await reload();
      });
      cell.append(revoke);
    }
    return h('tr', { dataset: { shareId: link.id, state: link.revoked_at ? 'revoked' : expired ? 'expired' : 'open' } },
      h('td', {}, h('time', { datetime: link.created_at }, when(link.created_at))),
      h('td', {}, link.expires_at ? when(link.expires_at) : 'never'),
      h('td', {}, link.frozen ? 'frozen' : 'live'),
      h('td', {}, stateText),
      cell);
  });
  container.append(h('table', { class: 'share-table' },
    h('thead', {}, h('tr', {}, ['made', 'expires', 'data', 'state', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows)));
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
  // The page's one legend is HTML; each exported figure carries its own again.
  const figures = plots.filter((plot) => plot.data).map((plot) => chart.drawnFigure(plot)).map((figure) => ({
    data: figure.data,
    layout: { ...figure.layout, showlegend: true, margin: { ...(figure.layout.margin || {}), b: 100 } },
  }));
  const sectionsHtml = sections.map((section) => {
    const copy = section.cloneNode(true);
    copy.querySelectorAll('form, button, input, #config-all-toggle, #note-hint').forEach((n) => n.remove());
    copy.querySelectorAll('details').forEach((n) => n.setAttribute('open', ''));
    return copy.outerHTML;
  });
  const html = standaloneHtml({ title, subtitle, plotlyJs, figures, sectionsHtml: sectionsHtml.join('\n') });
  download(new Blob([html], { type: 'text/html' }), 'parityscope-comparison.html');
}
