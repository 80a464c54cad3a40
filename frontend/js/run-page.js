// One run: its name, status and project, and its artifacts (files logged through MLflow's
// artifact calls), each downloadable with the browser's token.
import * as api from './api.js';
import { byId, clear, download, h } from './dom.js';
import { mountTokenBar } from './tokenbar.js';

const runId = Number(window.location.pathname.split('/')[2]);

function sizeText(bytes) {
  if (bytes === null || bytes === undefined) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function save(path, button) {
  button.disabled = true;
  try {
    const blob = await api.runArtifact(runId, path);
    download(blob, path.split('/').pop());
  } catch (e) {
    byId('artifacts-status').textContent = `${path}: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

async function load() {
  const status = byId('status');
  let run;
  try {
    run = await api.run(runId);
  } catch (e) {
    status.textContent = e.message;
    status.classList.add('error');
    return;
  }
  byId('title').textContent = run.name;
  document.title = `${run.name} · ParityScope`;
  clear(byId('crumbs')).append(h('a', { href: `/projects/${encodeURIComponent(run.project)}` }, run.project), ' › run');
  status.textContent = `${run.status} · created ${new Date(run.created_at).toLocaleString()}`;
  const rows = clear(byId('artifact-rows'));
  const files = await api.runArtifacts(runId);
  byId('artifacts-status').textContent = files.length ? `${files.length} files` : 'No artifacts.';
  for (const file of files) {
    const button = h('button', { type: 'button', class: 'artifact-download', 'aria-label': `download ${file.path}` }, 'Download');
    button.addEventListener('click', () => save(file.path, button));
    rows.append(h('tr', { class: 'artifact' }, h('td', { class: 'name' }, file.path), h('td', { class: 'num' }, sizeText(file.size)), h('td', {}, button)));
  }
}

mountTokenBar(byId('token-bar'), load);
load();
