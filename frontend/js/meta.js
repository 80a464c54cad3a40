// The comparison's defaults and bounds, the layer order and the engines, as the server declares
// them (GET /api/v1/meta, docs/API.md). Read once per page, before any module that uses them runs,
// so no page keeps its own copy of a Python constant.
import * as api from './api.js';

async function load() {
  try {
    return await api.meta();
  } catch (error) {
    document.body.prepend(`ParityScope cannot start this page: ${error.message}`);
    throw error;
  }
}

export const META = Object.freeze(await load());
