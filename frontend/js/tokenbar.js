// The header's token field. The token lives in localStorage (api.js reads it); it is needed for
// writes (notes, share links) and, on a private deployment, for reads.
import { forgetToken, getToken, setToken } from './api.js';
import { clear, h } from './dom.js';

export function mountTokenBar(container, onChange = () => {}) {
  function render() {
    clear(container);
    const token = getToken();
    if (token) {
      container.append(
        h('span', { class: 'muted', title: 'stored in this browser (localStorage)' }, `token …${token.slice(-4)}`),
        h('button', { type: 'button', id: 'token-forget', onclick: () => { forgetToken(); render(); onChange(); } }, 'Forget'),
      );
      return;
    }
    const input = h('input', {
      type: 'password', id: 'token-input', placeholder: 'API token (for notes and sharing)',
      autocomplete: 'off', 'aria-label': 'API token',
    });
    const save = () => {
      if (!input.value.trim()) return;
      setToken(input.value);
      render();
      onChange();
    };
    input.addEventListener('keydown', (event) => { if (event.key === 'Enter') save(); });
    container.append(input, h('button', { type: 'button', id: 'token-save', onclick: save }, 'Save'));
  }
  render();
}
