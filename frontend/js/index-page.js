import * as api from './api.js';
import { byId, clear, h } from './dom.js';
import { mountTokenBar } from './tokenbar.js';

async function load() {
  const status = byId('status');
  const list = clear(byId('projects'));
  try {
    const projects = await api.projects();
    status.textContent = projects.length ? '' : 'No projects yet: create one with the API or run `parityscope demo`.';
    for (const project of projects) {
      list.append(h('li', {},
        h('a', { href: `/projects/${encodeURIComponent(project.slug)}` }, project.name),
        ' ', h('span', { class: 'muted mono' }, project.slug)));
    }
  } catch (error) {
    status.textContent = error.status === 401 ? 'This deployment needs a token to read: enter one above.' : error.message;
    status.className = 'error';
  }
}

mountTokenBar(byId('token-bar'), load);
load();
