// Mutant's web page: the datasets, the map of a dataset, and its analyses.
// Plain DOM, no framework; it talks to the server only through the public
// protocol (PROTOCOL.md). User data goes into the page as text, never as HTML.
'use strict';

// ---------------------------------------------------------------- the API

const TOKEN_KEY = 'mutant-api-token';
let tokenPrompt = null;

/** Asks for the API token once (concurrent callers share the dialog). */
function askForToken(message) {
  if (tokenPrompt) return tokenPrompt;
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.hidden = !message;
  error.textContent = message || '';
  input.value = '';
  tokenPrompt = new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        tokenPrompt = null;
        resolve();
      },
      { once: true },
    );
  });
  dialog.showModal();
  input.focus();
  return tokenPrompt;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API with the tab's token; asks for a token on 401 and retries. */
async function api(path, { method = 'GET', body, binary = false } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (binary) headers.Accept = 'application/vnd.mutant.frame';
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && attempt < 5) {
      await askForToken(token ? 'That token was refused; try again.' : '');
      continue;
    }
    if (!response.ok) {
      let code = 'http_error';
      let message = `${method} ${path} answered ${response.status}`;
      try {
        const error = (await response.json()).error;
        code = error.code;
        message = error.message;
      } catch (_) {
        // Not a JSON error body; keep the status line.
      }
      throw new ApiError(response.status, code, message);
    }
    if (response.status === 204) return null;
    return binary ? response.arrayBuffer() : response.json();
  }
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- DOM helpers

/** Builds an element: `h('a', {href: '/x'}, 'text', child)`. Strings become text nodes. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'className') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces an element's children, skipping null, undefined and false and flattening arrays, as `h` does. */
function fill(element, ...children) {
  element.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
}

function link(path, text, attributes = {}) {
  return h('a', { href: path, 'data-link': true, ...attributes }, text);
}

function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (Number.isInteger(value)) return value.toLocaleString('en');
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(2);
  return Number(value.toFixed(digits)).toString();
}

function formatAgo(ms) {
  if (!ms) return h('span', { className: 'muted' }, 'never');
  const seconds = Math.max(0, (Date.now() - ms) / 1000);
  const text =
    seconds < 60 ? `${Math.round(seconds)} s ago`
      : seconds < 3600 ? `${Math.round(seconds / 60)} min ago`
        : seconds < 86400 ? `${Math.round(seconds / 3600)} h ago`
          : `${Math.round(seconds / 86400)} days ago`;
  return h('span', { title: new Date(ms).toISOString() }, text);
}

function statusPill(status) {
  return h('span', { className: `pill ${status}`, 'data-status': status }, status);
}

function isImageUri(uri) {
  return typeof uri === 'string' && /^(https?:|data:image\/)/i.test(uri);
}

function errorBox(error) {
  return h('p', { className: 'error', role: 'alert' }, error instanceof Error ? error.message : String(error));
}

// ---------------------------------------------------------------- routing

/** Everything the current view started (timers, the scatterplot), undone on navigation. */
let viewCleanups = [];

function onLeave(cleanup) {
  viewCleanups.push(cleanup);
}

function navigate(path) {
  history.pushState(null, '', path);
  render();
}

document.addEventListener('click', (event) => {
  const anchor = event.target.closest('a[data-link]');
  if (!anchor || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(anchor.getAttribute('href'));
});
window.addEventListener('popstate', render);

function setCrumbs(...items) {
  fill(document.getElementById('crumbs'), ...items);
}

async function render() {
  for (const cleanup of viewCleanups.splice(0)) {
    try {
      cleanup();
    } catch (_) {
      // A view that failed to start may have nothing to clean.
    }
  }
  const view = document.getElementById('view');
  view.replaceChildren();
  const parts = location.pathname.replace(/\/+$/, '').split('/').slice(2).map(decodeURIComponent);
  try {
    if (parts[0] === 'datasets' && parts[1]) await showDataset(view, parts[1]);
    else if (parts[0] === 'analyses' && parts[1]) await showAnalysis(view, parts[1]);
    else if (parts[0] === 'analyses') await showAllAnalyses(view);
    else await showDatasets(view);
  } catch (error) {
    view.append(errorBox(error));
  }
}

// ---------------------------------------------------------------- datasets

async function showDatasets(view) {
  setCrumbs(h('span', {}, 'datasets'));
  document.title = 'Datasets · Mutant';
  view.append(h('h1', {}, 'Datasets'));
  const { datasets } = await api('/v1/datasets');
  if (datasets.length === 0) {
    view.append(h('p', { className: 'muted' }, 'No datasets yet: create one and write records through the SDK or the API.'));
    return;
  }
  const rows = datasets.map((dataset) => {
    const cells = {
      records: h('td', { className: 'number' }, '…'),
      classes: h('td', {}, '…'),
      lastWrite: h('td', {}, '…'),
    };
    const row = h(
      'tr',
      { 'data-dataset': dataset.name },
      h('td', {}, link(`/ui/datasets/${enc(dataset.name)}`, dataset.name)),
      cells.records,
      h('td', { className: 'number' }, dataset.dimension),
      h('td', {}, dataset.metric),
      cells.classes,
      cells.lastWrite,
    );
    return { dataset, row, cells };
  });
  view.append(
    h(
      'table',
      { id: 'datasets' },
      h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', { className: 'number' }, 'records'),
        h('th', { className: 'number' }, 'dimension'), h('th', {}, 'metric'), h('th', {}, 'label classes'),
        h('th', {}, 'last write'))),
      h('tbody', {}, rows.map((entry) => entry.row)),
    ),
    h('p', { className: 'muted' }, 'Counts come from each server\'s cached copy of the dataset (GET /v1/datasets/{name}/summary).'),
  );
  // Summaries load each dataset into the server's cache: a few at a time.
  const queue = [...rows];
  const worker = async () => {
    for (let entry = queue.shift(); entry; entry = queue.shift()) {
      try {
        const summary = await api(`/v1/datasets/${enc(entry.dataset.name)}/summary`);
        entry.cells.records.textContent = formatNumber(summary.record_count);
        const labelled = summary.classes.filter((item) => item.labels > 0);
        const names = labelled.slice(0, 6).map((item) => item.name).join(', ');
        fill(entry.cells.classes,
          labelled.length === 0 ? h('span', { className: 'muted' }, 'none')
            : `${labelled.length}: ${names}${labelled.length > 6 ? ', …' : ''}`,
        );
        fill(entry.cells.lastWrite, formatAgo(summary.last_write_ms));
      } catch (error) {
        fill(entry.cells.records, h('span', { className: 'error', title: error.message }, error.code || 'error'));
        entry.cells.classes.textContent = '';
        entry.cells.lastWrite.textContent = '';
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}

// ---------------------------------------------------------------- colours

const CATEGORY_COLOURS = [
  '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7',
  '#9c755f', '#2f4b7c', '#a0cbe8', '#ffbe7d', '#8cd17d', '#ff9d9a', '#86bcb6', '#f1ce63',
  '#d4a6c8', '#499894', '#d37295', '#79706e',
];
const OTHER_COLOUR = '#bab0ac';
const NONE_COLOUR = '#dcdcdc';
// Viridis, sampled: low scores dark blue, high scores yellow.
const SCORE_STOPS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
const VERDICT_COLOURS = { flagged: '#d1495b', kept: '#8da0cb', none: '#dcdcdc' };

function scoreGradient(steps) {
  const parse = (hex) => [1, 3, 5].map((index) => parseInt(hex.slice(index, index + 2), 16));
  const stops = SCORE_STOPS.map(parse);
  const colours = [];
  for (let step = 0; step < steps; step += 1) {
    const position = (step / (steps - 1)) * (stops.length - 1);
    const low = Math.floor(position);
    const high = Math.min(stops.length - 1, low + 1);
    const mix = position - low;
    const rgb = stops[low].map((value, index) => Math.round(value + (stops[high][index] - value) * mix));
    colours.push(`#${rgb.map((value) => value.toString(16).padStart(2, '0')).join('')}`);
  }
  return colours;
}

// ---------------------------------------------------------------- the map

const WANTED_PROJECTION_DIMENSIONS = 2;
/** From this many points on, the map draws squares (see createScatterplot below). */
const LARGE_MAP_POINTS = 50_000;

function projectionDimensions(status) {
  return (status.params && status.params.dimensions) || 2;
}

/** The newest finished 2-D projection of a dataset; `stale` ones only when nothing fresher exists. */
function pickProjection(analyses) {
  const projections = analyses.filter(
    (item) => item.kind === 'projection' && projectionDimensions(item) === WANTED_PROJECTION_DIMENSIONS,
  );
  return projections.find((item) => item.status === 'done') || projections.find((item) => item.status === 'stale') || null;
}

async function waitForAnalysis(id, onProgress) {
  for (;;) {
    const status = await api(`/v1/analyses/${id}`);
    onProgress(status);
    if (['done', 'stale'].includes(status.status)) return status;
    if (['failed', 'cancelled'].includes(status.status)) {
      throw new Error(`the projection ${status.status}${status.error ? `: ${status.error}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function showDataset(view, name) {
  // Both at once: the summary counts on the server's cached copy (no count
  // query in ClickHouse), and the list names the projection to draw.
  const listRequest = api(`/v1/analyses?target=${enc(name)}`);
  listRequest.catch(() => {}); // awaited below; a failure shows there
  // The projection to draw is known once the list is: its points download
  // while the page and the scatterplot are set up.
  const prefetch = listRequest.then(({ analyses }) => {
    const chosen = pickProjection(analyses);
    if (!chosen) return null;
    const buffer = api(`/v1/analyses/${chosen.id}/points`, { binary: true });
    buffer.catch(() => {}); // awaited by loadProjection; a failure shows there
    return { id: chosen.id, buffer };
  });
  prefetch.catch(() => {});
  const summaryRequest = api(`/v1/datasets/${enc(name)}/summary`).catch((error) => {
    if (error.code === 'dataset_too_large') return api(`/v1/datasets/${enc(name)}`);
    throw error;
  });
  // Setting up the scatterplot holds the main thread for a while: wait for
  // the list too, so that the points download starts first.
  const [dataset] = await Promise.all([summaryRequest, listRequest.catch(() => null)]);
  if (dataset.name !== name) history.replaceState(null, '', `/ui/datasets/${enc(dataset.name)}${location.search}`);
  setCrumbs(link('/ui/', 'datasets'), h('span', {}, dataset.name));
  document.title = `${dataset.name} · Mutant`;
  const query = new URLSearchParams(location.search);

  const mapElement = h('div', { id: 'map', 'data-state': 'loading' });
  const mapStatus = h('div', { className: 'map-status' }, 'Loading the projection…');
  const legend = h('div', { className: 'legend', id: 'legend', hidden: true });
  const tooltip = h('div', { className: 'tooltip', id: 'tooltip', hidden: true });
  const colourSelect = h('select', { id: 'colour-by', 'aria-label': 'colour by' });
  const projectionSelect = h('select', { id: 'projection', 'aria-label': 'projection' });
  const modeButtons = ['pan', 'lasso', 'box'].map((mode) =>
    h('button', { type: 'button', 'data-mode': mode, 'aria-pressed': mode === 'pan' ? 'true' : 'false' }, mode));
  const recordCard = h('section', { className: 'card', id: 'record', hidden: true });
  const selectionCard = h('section', { className: 'card', id: 'selection', hidden: true });
  const analysesCard = h('section', { className: 'card', id: 'analyses' });

  view.append(
    h('h1', {}, dataset.name, ' ', h('span', { className: 'muted' },
      `${formatNumber(dataset.record_count)} records · dimension ${dataset.dimension} · ${dataset.metric}`)),
    h('div', { className: 'toolbar' },
      h('label', {}, 'projection', projectionSelect),
      h('button', { type: 'button', id: 'new-layout', title: 'compute a new neighbour-graph layout' }, 'new layout'),
      h('button', { type: 'button', id: 'new-pca', title: 'compute a new PCA projection' }, 'new PCA'),
      h('label', {}, 'colour by', colourSelect),
      h('span', { className: 'muted' }, 'select:'), modeButtons,
      h('span', { className: 'muted' }, 'drag to pan, scroll to zoom, click a point for its neighbours, shift-drag to lasso')),
    h('div', { className: 'dataset-layout' },
      h('div', { className: 'map-frame' }, mapElement, mapStatus, legend, tooltip),
      h('div', { className: 'side' }, recordCard, selectionCard, analysesCard)),
  );

  const state = {
    dataset,
    points: null, // the decoded projection
    rowOfId: new Map(),
    scatterplot: null,
    colour: { mode: 'label' },
    colourPoints: null, // decoded points of the analysis coloured by, indexed like `points`
    colourScores: null,
    colourFlagged: null,
    analyses: [],
    focus: null,
  };

  // ---- the scatterplot
  const scatterplot = createScatterplot({
    canvas: h('canvas'),
    width: 'auto',
    height: 'auto',
    backgroundColor: '#ffffff',
    pointColorHover: '#111111',
    pointColorActive: '#ff3d00',
    pointOutlineWidth: 2,
    pointSizeSelected: 3,
    lassoColor: '#2457c5',
    lassoMinDelay: 10,
    opacityInactiveMax: 0.35,
    deselectOnDblClick: true,
    // Squares draw faster than anti-aliased discs, and at the 2-3 pixels
    // points get on a large map nobody sees the difference.
    renderPointsAsSquares: dataset.record_count >= LARGE_MAP_POINTS,
  });
  mapElement.append(scatterplot.get('canvas'));
  state.scatterplot = scatterplot;
  // A handle for people debugging in the console and for the browser tests.
  globalThis.mutantMap = state;
  onLeave(() => {
    scatterplot.destroy();
    delete globalThis.mutantMap;
  });

  let mouse = { x: 0, y: 0 };
  mapElement.addEventListener('mousemove', (event) => {
    const bounds = mapElement.getBoundingClientRect();
    mouse = { x: event.clientX - bounds.left, y: event.clientY - bounds.top };
    if (!tooltip.hidden) placeTooltip();
  });
  const placeTooltip = () => {
    tooltip.style.left = `${Math.min(mouse.x + 14, mapElement.clientWidth - 240)}px`;
    tooltip.style.top = `${mouse.y + 14}px`;
  };
  scatterplot.subscribe('pointOver', (index) => {
    const points = state.points;
    if (!points) return;
    const score = state.colourScores ? state.colourScores[index] : NaN;
    const verdict = state.colourFlagged ? state.colourFlagged[index] : 2;
    fill(tooltip, ...[
      h('div', {}, h('b', {}, points.ids[index])),
      h('div', {}, `label: ${points.className(points.labels[index]) ?? '–'}`),
      h('div', {}, `prediction: ${points.className(points.predictions[index]) ?? '–'}`),
      state.colourScores ? h('div', {}, `score: ${formatNumber(score)}${verdict === 1 ? ' · flagged' : ''}`) : null,
    ].filter(Boolean));
    tooltip.dataset.id = points.ids[index];
    tooltip.hidden = false;
    placeTooltip();
  });
  scatterplot.subscribe('pointOut', () => {
    tooltip.hidden = true;
  });
  scatterplot.subscribe('select', ({ points: selected }) => {
    if (selected.length === 1) {
      selectionCard.hidden = true;
      showRecord(state, selected[0], recordCard);
    } else {
      showSelection(state, selected, selectionCard, recordCard);
    }
  });
  scatterplot.subscribe('deselect', () => {
    selectionCard.hidden = true;
  });
  for (const button of modeButtons) {
    button.addEventListener('click', () => {
      const mode = button.dataset.mode;
      for (const other of modeButtons) other.setAttribute('aria-pressed', other === button ? 'true' : 'false');
      if (mode === 'pan') scatterplot.set({ mouseMode: 'panZoom' });
      else scatterplot.set({ mouseMode: 'lasso', lassoType: mode === 'box' ? 'rectangle' : 'freeform' });
    });
  }

  // ---- projections and colours
  const loadProjection = async (status, prefetched) => {
    const started = performance.now();
    mapElement.dataset.state = 'loading';
    mapElement.removeAttribute('data-points');
    mapStatus.hidden = false;
    mapStatus.textContent = 'Loading the projection…';
    const buffer = await (prefetched || api(`/v1/analyses/${status.id}/points`, { binary: true }));
    const points = decodePoints(buffer);
    state.points = points;
    state.projection = status;
    state.rowOfId = new Map(points.ids.map((id, index) => [id, index]));
    await drawPoints(state);
    // data-points says the points are on screen: after the frame is painted.
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    mapStatus.hidden = true;
    mapElement.dataset.points = String(points.nPoints);
    mapElement.dataset.projection = status.id;
    mapElement.dataset.loadMs = String(Math.round(performance.now() - started));
    // Since navigation started: what "time to first paint" measures.
    mapElement.dataset.sinceNavigationMs = String(Math.round(performance.now()));
    mapElement.dataset.state = 'drawn';
  };
  // A deep link's `?record=`: selected (which shows it and its neighbours) once drawn.
  const focusRecord = () => {
    const row = state.focus ? state.rowOfId.get(state.focus) : undefined;
    state.focus = null;
    if (row === undefined) return;
    scatterplot.select([row]);
    // About a third of the map around it: its cluster and neighbours in view.
    const [x, y] = state.positions[row];
    scatterplot.zoomToLocation([x, y], 0.35, { transition: true });
  };

  const startProjection = async (method) => {
    const params = method ? { method } : {};
    const started = await api('/v1/analyses', {
      method: 'POST',
      body: { kind: 'projection', target: dataset.name, params },
    });
    mapStatus.hidden = false;
    const done = await waitForAnalysis(started.id, (status) => {
      mapStatus.textContent = `Computing the ${method || 'default'} projection: ${Math.round(status.progress * 100)}%`;
    });
    await refreshAnalyses();
    await loadProjection(done);
  };

  projectionSelect.addEventListener('change', async () => {
    const status = state.analyses.find((item) => item.id === projectionSelect.value);
    if (status) await loadProjection(status).catch((error) => fill(mapStatus, errorBox(error)));
  });
  view.querySelector('#new-layout').addEventListener('click', () =>
    startProjection('layout').catch((error) => fill(mapStatus, errorBox(error))));
  view.querySelector('#new-pca').addEventListener('click', () =>
    startProjection('pca').catch((error) => fill(mapStatus, errorBox(error))));

  colourSelect.addEventListener('change', () => {
    applyColour(state, colourSelect.value, legend).catch((error) => fill(legend, errorBox(error)));
  });

  // ---- analyses of this dataset, kept fresh
  const refreshAnalyses = async (listed) => {
    const { analyses } = await (listed || api(`/v1/analyses?target=${enc(dataset.name)}`));
    state.analyses = analyses;
    fillProjectionSelect(projectionSelect, analyses, state.projection);
    fillColourSelect(colourSelect, analyses, state.colour);
    renderAnalysesCard(analysesCard, analyses, dataset, state, legend, colourSelect);
    return analyses;
  };
  let refreshTimer = null;
  const scheduleRefresh = () => {
    const busy = state.analyses.some((item) => ['queued', 'running'].includes(item.status));
    refreshTimer = setTimeout(async () => {
      try {
        await refreshAnalyses();
      } catch (_) {
        // Shown on the next successful refresh; the map stays usable.
      }
      scheduleRefresh();
    }, busy ? 700 : 4000);
  };
  onLeave(() => clearTimeout(refreshTimer));
  const onStarted = () => refreshAnalyses().catch(() => {});
  document.addEventListener('analysis-started', onStarted);
  onLeave(() => document.removeEventListener('analysis-started', onStarted));

  const analyses = await refreshAnalyses(listRequest);
  scheduleRefresh();
  state.focus = query.get('record');
  const wantedColour = query.get('colour');
  if (wantedColour) state.colour = parseColourValue(wantedColour);

  if (dataset.record_count === 0) {
    mapStatus.textContent = 'This dataset has no records yet.';
    mapElement.dataset.points = '0';
    return;
  }
  const chosen = pickProjection(analyses);
  try {
    const prefetched = await prefetch.catch(() => null);
    if (chosen) await loadProjection(chosen, prefetched && prefetched.id === chosen.id ? prefetched.buffer : undefined);
    else await startProjection(null);
    fillProjectionSelect(projectionSelect, state.analyses, state.projection);
    if (wantedColour) {
      fillColourSelect(colourSelect, state.analyses, state.colour);
      await applyColour(state, wantedColour, legend);
    } else {
      renderLegend(state, legend);
    }
    focusRecord();
  } catch (error) {
    fill(mapStatus, errorBox(error));
  }
}

function parseColourValue(value) {
  const [mode, id] = value.split(':');
  return { mode, id };
}

/** Whether a select already offers exactly these options (rebuilding it would close it under the mouse). */
function unchanged(select, signature) {
  if (select.dataset.signature === signature) return true;
  select.dataset.signature = signature;
  return false;
}

function fillProjectionSelect(select, analyses, current) {
  const projections = analyses.filter((item) => item.kind === 'projection' && ['done', 'stale'].includes(item.status)
    && projectionDimensions(item) === WANTED_PROJECTION_DIMENSIONS);
  const signature = projections.map((item) => `${item.id}:${item.status}`).join() + (current ? current.id : '');
  if (unchanged(select, signature)) return;
  fill(select, 
    ...projections.map((item) =>
      h('option', { value: item.id, selected: current && current.id === item.id },
        `${item.params.method || 'default'} · ${new Date(item.created_at_ms).toLocaleString()}${item.status === 'stale' ? ' (stale)' : ''}`)),
  );
  if (projections.length === 0) select.append(h('option', { value: '' }, 'none yet'));
}

function fillColourSelect(select, analyses, colour) {
  const value = colour.mode === 'score' || colour.mode === 'verdict' ? `${colour.mode}:${colour.id}` : colour.mode;
  const finished = analyses.filter((item) => ['done', 'stale'].includes(item.status)).map((item) => item.id).join();
  if (unchanged(select, `${finished}|${value}`)) return;
  const options = [h('option', { value: 'label' }, 'label'), h('option', { value: 'prediction' }, 'prediction')];
  for (const item of analyses) {
    if (!['done', 'stale'].includes(item.status) || ['projection', 'near_duplicates', 'drift'].includes(item.kind)) continue;
    const when = new Date(item.created_at_ms).toLocaleTimeString();
    options.push(h('option', { value: `score:${item.id}` }, `${item.kind} score · ${when}`));
    options.push(h('option', { value: `verdict:${item.id}` }, `${item.kind} verdict · ${when}`));
  }
  fill(select, ...options);
  select.value = value;
}

/** Category codes for the label or prediction colouring: the 19 commonest classes get a colour, then "other", then "none". */
function classCategories(points, codes) {
  const counts = new Map();
  for (const code of codes) if (code !== NO_CLASS) counts.set(code, (counts.get(code) || 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || points.classes[a[0]].localeCompare(points.classes[b[0]]));
  const shown = ranked.slice(0, CATEGORY_COLOURS.length - 1);
  const categoryOf = new Map(shown.map(([code], index) => [code, index]));
  const other = shown.length;
  const none = other + 1;
  const values = new Array(codes.length);
  let nOther = 0;
  let nNone = 0;
  for (let index = 0; index < codes.length; index += 1) {
    const code = codes[index];
    if (code === NO_CLASS) {
      values[index] = none;
      nNone += 1;
    } else {
      const category = categoryOf.get(code);
      if (category === undefined) nOther += 1;
      values[index] = category === undefined ? other : category;
    }
  }
  const colours = shown.map((_, index) => CATEGORY_COLOURS[index]).concat([OTHER_COLOUR, NONE_COLOUR]);
  const entries = shown.map(([code, count], index) => ({ colour: CATEGORY_COLOURS[index], name: points.classes[code], count }));
  if (nOther) entries.push({ colour: OTHER_COLOUR, name: `${ranked.length - shown.length} other classes`, count: nOther });
  if (nNone) entries.push({ colour: NONE_COLOUR, name: 'none', count: nNone });
  return { values, colours, entries };
}

async function applyColour(state, value, legend) {
  const colour = parseColourValue(value);
  state.colour = colour;
  state.colourScores = null;
  state.colourFlagged = null;
  if (colour.mode === 'score' || colour.mode === 'verdict') {
    const points = decodePoints(await api(`/v1/analyses/${colour.id}/points`, { binary: true }));
    const n = state.points.nPoints;
    const scores = new Float32Array(n).fill(NaN);
    const flagged = new Uint8Array(n).fill(2);
    for (let index = 0; index < points.nPoints; index += 1) {
      const row = state.rowOfId.get(points.ids[index]);
      if (row === undefined) continue;
      scores[row] = points.scores[index];
      flagged[row] = points.flagged[index];
    }
    state.colourScores = scores;
    state.colourFlagged = flagged;
    state.colourAnalysis = state.analyses.find((item) => item.id === colour.id);
  }
  await drawPoints(state);
  renderLegend(state, legend);
}

/** Draws the projection coloured by `state.colour`. */
async function drawPoints(state) {
  const { points, scatterplot } = state;
  const n = points.nPoints;
  const c = points.nComponents;
  // Fit the middle 99.8% of each axis into view: a layout's rare stragglers
  // (records a neighbour graph barely holds) stay drawn, off-screen until
  // one zooms out, instead of shrinking every cluster to a dot.
  const quantiles = (component) => {
    const values = [];
    for (let index = 0; index < n; index += 1) {
      const value = points.coordinates[index * c + component];
      if (Number.isFinite(value)) values.push(value);
    }
    if (values.length === 0) return [0, 0];
    const sorted = Float64Array.from(values).sort();
    const at = (share) => sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))];
    return sorted.length > 1000 ? [at(0.001), at(0.999)] : [sorted[0], sorted[sorted.length - 1]];
  };
  const [minX, maxX] = quantiles(0);
  const [minY, maxY] = quantiles(1);
  // One scale for both axes (distances keep their meaning), fitting [-0.95, 0.95].
  const span = Math.max(maxX - minX, maxY - minY) || 1;
  const scale = 1.9 / span;
  const centreX = (minX + maxX) / 2 || 0;
  const centreY = (minY + maxY) / 2 || 0;

  let categories = null;
  let continuous = null;
  let colourBy = 'valueA';
  let pointColour;
  const mode = state.colour.mode;
  if (mode === 'score' && state.colourScores) {
    // Colour by percentile (the share of scores below a point's), so
    // heavy-tailed scores still use the whole ramp, and tied scores (the
    // many zeros of a kNN vote) share one colour.
    const scores = state.colourScores;
    const order = Array.from(scores.keys())
      .filter((index) => Number.isFinite(scores[index]))
      .sort((a, b) => scores[a] - scores[b]);
    continuous = new Float32Array(n).fill(0);
    const denominator = Math.max(1, order.length - 1);
    let below = 0;
    order.forEach((row, rank) => {
      if (rank > 0 && scores[row] !== scores[order[rank - 1]]) below = rank;
      continuous[row] = below / denominator;
    });
    state.scoreOrder = order;
    colourBy = 'valueB';
    pointColour = scoreGradient(64);
  } else if (mode === 'verdict' && state.colourFlagged) {
    categories = Array.from(state.colourFlagged, (verdict) => (verdict === 1 ? 0 : verdict === 0 ? 1 : 2));
    pointColour = [VERDICT_COLOURS.flagged, VERDICT_COLOURS.kept, VERDICT_COLOURS.none];
  } else {
    const codes = mode === 'prediction' ? points.predictions : points.labels;
    const classes = classCategories(points, codes);
    categories = classes.values;
    pointColour = classes.colours;
    state.legendEntries = classes.entries;
  }
  const rows = new Array(n);
  for (let index = 0; index < n; index += 1) {
    rows[index] = [
      (points.coordinates[index * c] - centreX) * scale || 0,
      (points.coordinates[index * c + 1] - centreY) * scale || 0,
      categories ? categories[index] : 0,
      continuous ? continuous[index] : 0,
    ];
  }
  state.positions = rows;
  const pointSize = Math.max(2, Math.min(8, 14 - 2.4 * Math.log10(Math.max(n, 10))));
  scatterplot.set({ colorBy: colourBy, pointColor: pointColour, pointSize });
  await scatterplot.draw(rows, { zDataType: 'categorical', wDataType: 'continuous', preventFilterReset: true });
  // Flagged and high-scoring points on top, so a few of them are not buried in the rest.
  if (mode === 'verdict' && categories) {
    scatterplot.set({ pointOrder: Array.from(categories.keys()).sort((a, b) => categories[b] - categories[a]) });
  } else if (mode === 'score' && state.scoreOrder) {
    scatterplot.set({ pointOrder: state.scoreOrder });
  } else {
    scatterplot.set({ pointOrder: null });
  }
}

function renderLegend(state, legend) {
  const mode = state.colour.mode;
  legend.hidden = false;
  if (mode === 'score' && state.colourScores) {
    const finite = Array.from(state.colourScores).filter(Number.isFinite).sort((a, b) => a - b);
    const at = (share) => finite[Math.min(finite.length - 1, Math.floor(share * (finite.length - 1)))];
    const gradient = h('div', { className: 'gradient' });
    gradient.style.background = `linear-gradient(to right, ${SCORE_STOPS.join(', ')})`;
    fill(legend, 
      h('div', {}, h('b', {}, `${state.colourAnalysis ? state.colourAnalysis.kind : 'analysis'} score`), ' (by percentile)'),
      gradient,
      h('div', { className: 'ends' }, h('span', {}, formatNumber(at(0))), h('span', {}, `median ${formatNumber(at(0.5))}`),
        h('span', {}, formatNumber(at(1)))),
    );
  } else if (mode === 'verdict' && state.colourFlagged) {
    const counts = [0, 0, 0];
    for (const verdict of state.colourFlagged) counts[verdict === 1 ? 0 : verdict === 0 ? 1 : 2] += 1;
    fill(legend, 
      h('div', {}, h('b', {}, `${state.colourAnalysis ? state.colourAnalysis.kind : 'analysis'} verdict`)),
      ...[['flagged', 0], ['not flagged', 1], ['no verdict', 2]]
        .filter(([, index]) => counts[index] > 0)
        .map(([name, index]) => h('div', { 'data-legend': name },
          h('span', { className: 'swatch', style: `background:${Object.values(VERDICT_COLOURS)[index]}` }),
          `${name} (${formatNumber(counts[index])})`)),
    );
  } else {
    fill(legend, 
      h('div', {}, h('b', {}, mode === 'prediction' ? 'prediction' : 'label')),
      ...(state.legendEntries || []).map((entry) => h('div', { 'data-legend': entry.name },
        h('span', { className: 'swatch', style: `background:${entry.colour}` }), `${entry.name} (${formatNumber(entry.count)})`)),
    );
  }
}

// ---------------------------------------------------------------- records

function recordFields(record, extra = []) {
  const metadata = record.metadata ? Object.entries(record.metadata) : [];
  return h('dl', {},
    h('dt', {}, 'id'), h('dd', { className: 'mono' }, record.id),
    h('dt', {}, 'label'), h('dd', {}, record.label ?? '–'),
    h('dt', {}, 'prediction'), h('dd', {}, record.prediction ?? '–'),
    record.uri ? [h('dt', {}, 'uri'), h('dd', { className: 'mono' },
      /^https?:/i.test(record.uri) ? h('a', { href: record.uri, target: '_blank', rel: 'noopener noreferrer' }, record.uri)
        : record.uri.startsWith('data:') ? `${record.uri.slice(0, 40)}…` : record.uri)] : null,
    extra,
    metadata.map(([key, value]) => [h('dt', {}, key), h('dd', {}, String(value))]),
  );
}

function preview(record) {
  return isImageUri(record.uri) ? h('img', { className: 'preview', src: record.uri, alt: `preview of ${record.id}` }) : null;
}

async function fetchRecords(datasetName, ids, withVectors = false) {
  const include = ['label', 'prediction', 'uri', 'metadata'];
  if (withVectors) include.push('vector');
  const { records } = await api(`/v1/datasets/${enc(datasetName)}/records/get`, {
    method: 'POST',
    body: { ids, include, limit: Math.max(1, ids.length) },
  });
  return new Map(records.map((record) => [record.id, record]));
}

const NEIGHBOURS_SHOWN = 10;

async function showRecord(state, row, card) {
  const { points, dataset, scatterplot } = state;
  const id = points.ids[row];
  card.hidden = false;
  card.dataset.id = id;
  fill(card, h('h2', {}, 'Record'), h('p', { className: 'muted' }, 'Loading…'));
  try {
    const record = (await fetchRecords(dataset.name, [id], true)).get(id);
    if (!record) throw new Error(`record ${id} is no longer in the dataset`);
    const { results } = await api(`/v1/datasets/${enc(dataset.name)}/knn`, {
      method: 'POST',
      body: { queries: [record.vector], k: NEIGHBOURS_SHOWN + 1, include: ['label', 'prediction'] },
    });
    const neighbours = results[0].filter((neighbour) => neighbour.id !== id).slice(0, NEIGHBOURS_SHOWN);
    const neighbourRows = neighbours.map((neighbour) => state.rowOfId.get(neighbour.id)).filter((index) => index !== undefined);
    scatterplot.select([row, ...neighbourRows], { preventEvent: true });
    const score = state.colourScores ? state.colourScores[row] : NaN;
    const extra = state.colourScores
      ? [h('dt', {}, 'score'), h('dd', {}, `${formatNumber(score)}${state.colourFlagged[row] === 1 ? ' (flagged)' : ''}`)] : [];
    const labels = neighbours.map((neighbour) => neighbour.label).filter(Boolean);
    const disagree = record.label ? labels.filter((label) => label !== record.label).length : 0;
    fill(card, 
      h('h2', {}, 'Record'),
      preview(record),
      recordFields(record, extra),
      h('h2', {}, `Nearest ${neighbours.length} neighbours`),
      record.label && labels.length
        ? h('p', { className: 'muted' }, `${disagree} of ${labels.length} labelled neighbours are not labelled ${record.label}`) : null,
      h('ol', { className: 'neighbours', id: 'neighbours' },
        neighbours.map((neighbour) => h('li', {
          'data-id': neighbour.id,
          onmouseenter: () => {
            const index = state.rowOfId.get(neighbour.id);
            if (index !== undefined) scatterplot.hover(index, { preventEvent: true });
          },
          onclick: () => {
            const index = state.rowOfId.get(neighbour.id);
            if (index !== undefined) showRecord(state, index, card);
          },
        }, h('span', { className: 'mono' }, neighbour.id), ' ',
        h('span', { className: neighbour.label && record.label && neighbour.label !== record.label ? 'pill flag' : 'pill' }, neighbour.label ?? 'unlabelled'),
        ' ', h('span', { className: 'muted' }, `d = ${formatNumber(neighbour.distance)}`)))),
    );
    card.dataset.neighbours = String(neighbours.length);
  } catch (error) {
    fill(card, h('h2', {}, 'Record'), errorBox(error));
  }
}

const SELECTION_LISTED = 500;

function showSelection(state, selected, card, recordCard) {
  const { points } = state;
  card.hidden = false;
  const byLabel = new Map();
  for (const row of selected) {
    const name = points.className(points.labels[row]) ?? 'none';
    byLabel.set(name, (byLabel.get(name) || 0) + 1);
  }
  const breakdown = [...byLabel.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8)
    .map(([name, count]) => `${name} ${count}`).join(' · ');
  const listed = selected.slice(0, SELECTION_LISTED);
  card.dataset.count = String(selected.length);
  fill(card, 
    h('h2', {}, `Selection: ${formatNumber(selected.length)} records`),
    h('p', { className: 'muted' }, `labels: ${breakdown}`),
    h('div', { className: 'scroll' }, h('table', { id: 'selection-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'id'), h('th', {}, 'label'), h('th', {}, 'prediction'),
        state.colourScores ? h('th', { className: 'number' }, 'score') : null)),
      h('tbody', {}, listed.map((row) => h('tr', { onclick: () => showRecord(state, row, recordCard), style: 'cursor:pointer' },
        h('td', { className: 'mono' }, points.ids[row]),
        h('td', {}, points.className(points.labels[row]) ?? '–'),
        h('td', {}, points.className(points.predictions[row]) ?? '–'),
        state.colourScores ? h('td', { className: 'number' }, formatNumber(state.colourScores[row])) : null))))),
    selected.length > SELECTION_LISTED ? h('p', { className: 'muted' }, `first ${SELECTION_LISTED} listed`) : null,
  );
}

// ---------------------------------------------------------------- analyses

const KINDS = {
  mislabel: { reference: 'none', params: [['k', 'integer', '20'], ['method', ['self_confidence', 'normalized_margin']], ['threshold', 'number', 'automatic']] },
  uniqueness: { reference: 'none', params: [['k', 'integer', '10'], ['threshold', 'number', 'automatic']] },
  near_duplicates: { reference: 'optional', params: [['k', 'integer', '10'], ['threshold', 'number', 'automatic'], ['ratio', 'number', '0.5']] },
  novelty: { reference: 'required', params: [['k', 'integer', '10'], ['threshold', 'number', 'automatic']] },
  boundary_uncertainty: { reference: 'required', params: [['k', 'integer', '10'], ['threshold', 'number', 'automatic']] },
  activation_uncertainty: { reference: 'required', params: [['threshold', 'number', 'automatic']] },
  class_outlier: { reference: 'required', params: [['threshold', 'number', 'automatic']] },
  drift: { reference: 'required', params: [['sample_size', 'integer', '1000'], ['n_permutations', 'integer', '200'], ['seed', 'integer', '0'], ['threshold', 'number', '0.05']] },
  select: { reference: 'optional', params: [['n', 'integer', 'required'], ['k', 'integer', '10'], ['weights', 'json', 'automatic'],
    ['random_weight', 'number', '0'], ['diversity', 'boolean'], ['unlabeled_only', 'boolean'], ['seed', 'integer', '0']] },
  projection: { reference: 'none', params: [['method', ['', 'layout', 'pca']], ['dimensions', 'integer', '2'], ['seed', 'integer', '0']] },
};

function progressBar(status) {
  const running = ['queued', 'running'].includes(status.status);
  return h('progress', { max: 1, value: status.status === 'done' || status.status === 'stale' ? 1 : status.progress,
    'aria-label': `${status.kind} progress`, 'data-running': running ? 'true' : 'false' });
}

function analysisRow(status, { onColour, onCancel } = {}) {
  const perRecord = !['projection', 'near_duplicates', 'drift'].includes(status.kind);
  const detail = status.kind === 'projection' ? status.params.method || 'default' : status.params.method || '';
  return h('tr', { 'data-analysis': status.id, 'data-kind': status.kind, 'data-status': status.status },
    h('td', {}, link(`/ui/analyses/${status.id}`, status.kind), detail ? h('div', { className: 'muted' }, detail) : null),
    h('td', {}, statusPill(status.status), h('div', { className: 'muted' }, formatAgo(status.created_at_ms))),
    h('td', { className: 'progress-cell' }, progressBar(status), ` ${Math.round(status.progress * 100)}%`,
      h('div', {},
      onColour && perRecord && ['done', 'stale'].includes(status.status)
        ? h('button', { type: 'button', onclick: () => onColour(status), title: 'colour the map by its score' }, 'colour') : null,
      onCancel && ['queued', 'running'].includes(status.status)
        ? h('button', { type: 'button', onclick: () => onCancel(status) }, 'cancel') : null)),
  );
}

function renderAnalysesCard(card, analyses, dataset, state, legend, colourSelect) {
  let form = card.querySelector('form');
  if (!form) form = analysisForm(dataset);
  const onColour = (status) => {
    colourSelect.value = `score:${status.id}`;
    if (colourSelect.value !== `score:${status.id}`) fillColourSelect(colourSelect, state.analyses, { mode: 'score', id: status.id });
    applyColour(state, `score:${status.id}`, legend).catch((error) => fill(legend, errorBox(error)));
  };
  const onCancel = (status) => api(`/v1/analyses/${status.id}`, { method: 'DELETE' });
  fill(card, 
    h('h2', {}, 'Analyses'),
    analyses.length === 0 ? h('p', { className: 'muted' }, 'None yet.') : h('div', { className: 'scroll' },
      h('table', { id: 'analyses-table' }, h('tbody', {}, analyses.map((status) => analysisRow(status, { onColour, onCancel }))))),
    h('h2', {}, 'Start an analysis'),
    form,
  );
}

function analysisForm(dataset) {
  const kind = h('select', { name: 'kind', id: 'analysis-kind' }, Object.keys(KINDS).map((name) => h('option', { value: name }, name)));
  const reference = h('select', { name: 'reference', id: 'analysis-reference' });
  const referenceRow = [h('label', { for: 'analysis-reference' }, 'reference'), reference];
  const paramsBox = h('div', { className: 'wide analysis-form', id: 'analysis-params' });
  const message = h('p', { className: 'wide', id: 'analysis-message', role: 'status' });
  const form = h('form', { className: 'analysis-form', id: 'analysis-form' },
    h('label', { for: 'analysis-kind' }, 'kind'), kind,
    referenceRow,
    paramsBox,
    h('button', { type: 'submit', className: 'primary wide', id: 'analysis-start' }, 'start'),
    message);
  api('/v1/datasets').then(({ datasets }) => {
    fill(reference, h('option', { value: '' }, '(none)'),
      ...datasets.filter((item) => item.name !== dataset.name && item.dimension === dataset.dimension)
        .map((item) => h('option', { value: item.name }, item.name)));
  }).catch(() => {});
  const showParams = () => {
    const spec = KINDS[kind.value];
    for (const element of referenceRow) element.hidden = spec.reference === 'none';
    fill(paramsBox, ...spec.params.flatMap(([name, type, placeholder]) => {
      const id = `param-${name}`;
      let input;
      if (Array.isArray(type)) {
        input = h('select', { id, name }, type.map((option) => h('option', { value: option }, option || 'default')));
      } else if (type === 'boolean') {
        input = h('input', { id, name, type: 'checkbox' });
      } else {
        input = h('input', { id, name, type: 'text', placeholder, inputmode: type === 'json' ? 'text' : 'decimal', 'data-type': type });
      }
      return [h('label', { for: id }, name), input];
    }));
  };
  kind.addEventListener('change', showParams);
  showParams();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const spec = KINDS[kind.value];
    const params = {};
    message.className = 'wide';
    message.textContent = 'starting…';
    try {
      for (const [name, type] of spec.params) {
        const input = form.querySelector(`#param-${name}`);
        if (type === 'boolean') { if (input.checked) params[name] = true; continue; }
        const text = input.value.trim();
        if (text === '') continue;
        if (Array.isArray(type)) params[name] = text;
        else if (type === 'json') params[name] = JSON.parse(text);
        else if (Number.isNaN(Number(text))) throw new Error(`${name} must be a number`);
        else params[name] = Number(text);
      }
      const body = { kind: kind.value, target: dataset.name, params };
      if (spec.reference !== 'none' && reference.value) body.reference = reference.value;
      const status = await api('/v1/analyses', { method: 'POST', body });
      message.className = 'wide';
      fill(message, 'started ', link(`/ui/analyses/${status.id}`, `${status.kind} ${status.id.slice(0, 8)}`));
      document.dispatchEvent(new CustomEvent('analysis-started', { detail: status }));
    } catch (error) {
      message.className = 'wide error';
      message.textContent = error.message;
    }
  });
  return form;
}

// ---------------------------------------------------------------- every analysis

async function showAllAnalyses(view) {
  setCrumbs(link('/ui/', 'datasets'), h('span', {}, 'analyses'));
  document.title = 'Analyses · Mutant';
  const table = h('table', { id: 'all-analyses' });
  view.append(h('h1', {}, 'Analyses'), table);
  const { datasets } = await api('/v1/datasets');
  const names = new Map(datasets.map((dataset) => [dataset.id, dataset.name]));
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const refresh = async () => {
    const { analyses } = await api('/v1/analyses?limit=200');
    fill(table,
      h('thead', {}, h('tr', {}, h('th', {}, 'analysis'), h('th', {}, 'status'), h('th', {}, 'progress'), h('th', {}, 'target'),
        h('th', {}, 'reference'))),
      h('tbody', {}, analyses.map((status) => {
        const row = analysisRow(status);
        const dataset = (id) => (id ? (names.has(id) ? link(`/ui/datasets/${enc(names.get(id))}`, names.get(id)) : id.slice(0, 8)) : '–');
        row.append(h('td', {}, dataset(status.target)), h('td', {}, dataset(status.reference)));
        return row;
      })));
    if (analyses.length === 0) fill(table, h('tr', {}, h('td', { className: 'muted' }, 'No analyses yet.')));
    const busy = analyses.some((item) => ['queued', 'running'].includes(item.status));
    timer = setTimeout(() => refresh().catch(() => {}), busy ? 1000 : 5000);
  };
  await refresh();
}

// ---------------------------------------------------------------- one analysis

const RESULTS_PAGE = 50;

/** A result row's evidence in words. */
function evidenceInWords(kind, row) {
  const neighbourLabels = () => {
    const counts = new Map();
    for (const neighbour of (row.evidence && row.evidence.neighbours) || []) {
      const name = neighbour.label ?? 'unlabelled';
      counts.set(name, (counts.get(name) || 0) + 1);
    }
    return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([name, count]) => `${count} × ${name}`).join(', ');
  };
  switch (kind) {
    case 'mislabel':
      if (row.label === null || row.label === undefined) return 'unlabelled';
      return row.suggested_label
        ? `labelled ${row.label}, its neighbours say ${row.suggested_label} (p(${row.label}) = ${formatNumber(row.given_probability, 2)}; neighbours: ${neighbourLabels()})`
        : `labelled ${row.label}, its neighbours agree (p = ${formatNumber(row.given_probability, 2)})`;
    case 'boundary_uncertainty':
      return `its nearest labelled references: ${neighbourLabels() || 'none'}`;
    case 'novelty':
    case 'uniqueness': {
      const nearest = row.evidence && row.evidence.neighbours && row.evidence.neighbours[0];
      return `${formatNumber(row.score, 2)}× as far from its neighbours as they are from theirs${nearest ? `; nearest ${nearest.id} at ${formatNumber(nearest.distance)}` : ''}`;
    }
    case 'activation_uncertainty':
      return `vector norm ${formatNumber(row.norm)} is ${row.score > 0.5 ? 'low' : 'ordinary'} for ${row.class ?? 'the labelled references'}`;
    case 'class_outlier':
      return `farther from the centre of ${row.class ?? 'its nearest class'} than ${Math.round((row.percentile ?? 0) * 100)}% of that class`;
    case 'select':
      return `picked by ${row.reason}${row.label ? `, labelled ${row.label}` : ', unlabelled'}`;
    case 'projection':
      return `at (${(row.coordinates || []).map((value) => formatNumber(value, 2)).join(', ')})`;
    default:
      return row.evidence ? neighbourLabels() : '';
  }
}

async function showAnalysis(view, id) {
  let status = await api(`/v1/analyses/${enc(id)}`);
  const target = await api(`/v1/datasets/${status.target}`).catch(() => null);
  const targetName = target ? target.name : status.target;
  setCrumbs(link('/ui/', 'datasets'), target ? link(`/ui/datasets/${enc(targetName)}`, targetName) : h('span', {}, targetName),
    h('span', {}, `${status.kind} ${id.slice(0, 8)}`));
  document.title = `${status.kind} · Mutant`;
  const header = h('div', { id: 'analysis-status' });
  const results = h('section', { id: 'results' });
  view.append(h('h1', {}, `${status.kind} on ${targetName}`), header, results);

  const renderHeader = () => {
    fill(header, 
      h('div', { className: 'summary' },
        h('span', {}, statusPill(status.status)),
        h('span', {}, progressBar(status), ' ', `${Math.round(status.progress * 100)}%`),
        h('span', { className: 'muted' }, 'started ', formatAgo(status.created_at_ms)),
        status.params && Object.keys(status.params).length ? h('span', { className: 'mono' }, JSON.stringify(status.params)) : null,
        ['queued', 'running'].includes(status.status)
          ? h('button', { type: 'button', onclick: () => api(`/v1/analyses/${id}`, { method: 'DELETE' }) }, 'cancel') : null),
      status.error ? errorBox(status.error) : null,
    );
  };
  renderHeader();
  // Live progress until the analysis is final.
  let stopped = false;
  onLeave(() => { stopped = true; });
  while (['queued', 'running'].includes(status.status)) {
    await new Promise((resolve) => setTimeout(resolve, 700));
    if (stopped || !document.contains(header)) return;
    status = await api(`/v1/analyses/${enc(id)}`);
    renderHeader();
  }
  if (!['done', 'stale'].includes(status.status)) return;
  await showResults(results, status, targetName);
}

async function showResults(section, status, targetName) {
  const flaggedOnly = h('input', { type: 'checkbox', id: 'flagged-only' });
  const pager = h('div', { className: 'pager' });
  const body = h('div', {});
  const summaryBox = h('div', { className: 'summary', id: 'analysis-summary' });
  const isPairs = status.kind === 'near_duplicates';
  const isDrift = status.kind === 'drift';
  const hasVerdicts = !isPairs && !isDrift && status.kind !== 'projection';
  section.append(
    summaryBox,
    h('div', { className: 'toolbar' },
      hasVerdicts ? h('label', {}, flaggedOnly, 'flagged only') : null,
      !isPairs && !isDrift ? link(`/ui/datasets/${enc(targetName)}?colour=${status.kind === 'projection' ? 'label' : `score:${status.id}`}`,
        'see it on the map') : null),
    pager,
    body,
  );
  let offset = 0;
  const load = async () => {
    const query = new URLSearchParams({ limit: RESULTS_PAGE, offset });
    if (flaggedOnly.checked) query.set('flagged', 'true');
    if (isPairs) query.set('include', 'label,prediction,uri');
    const page = await api(`/v1/analyses/${status.id}/results?${query}`);
    const summary = page.summary || status.summary;
    fill(summaryBox, ...(summary ? Object.entries(summary).map(([key, value]) =>
      h('span', {}, h('span', { className: 'muted' }, `${key} `), typeof value === 'number' ? formatNumber(value)
        : Array.isArray(value) ? value.map((item) => (typeof item === 'number' ? formatNumber(item) : String(item))).join(', ')
          : typeof value === 'object' ? JSON.stringify(value) : String(value))) : []),
    h('span', {}, h('span', { className: 'muted' }, 'rows '), formatNumber(page.total)));
    const rows = page.results;
    fill(pager, 
      h('button', { type: 'button', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - RESULTS_PAGE); load(); } }, '← previous'),
      h('span', { className: 'muted' }, `rows ${formatNumber(page.total === 0 ? 0 : offset + 1)}–${formatNumber(Math.min(page.total, offset + page.results.length))} of ${formatNumber(page.total)}`),
      h('button', { type: 'button', disabled: offset + RESULTS_PAGE >= page.total, onclick: () => { offset += RESULTS_PAGE; load(); } }, 'next →'),
    );
    if (isPairs) fill(body, await pairsView(rows, status, targetName));
    else if (isDrift) fill(body, driftTable(rows));
    else fill(body, resultsTable(rows, status, targetName));
    // What is on screen now, for people reading the DOM and for the tests.
    section.dataset.flaggedOnly = String(flaggedOnly.checked);
    section.dataset.total = String(page.total);
  };
  flaggedOnly.addEventListener('change', () => { offset = 0; load().catch((error) => fill(body, errorBox(error))); });
  await load();
}

function resultsTable(rows, status, targetName) {
  return h('table', { id: 'results-table' },
    h('thead', {}, h('tr', {}, h('th', { className: 'number' }, 'rank'), h('th', {}, 'id'),
      h('th', { className: 'number' }, 'score'), h('th', {}, 'verdict'), h('th', {}, 'evidence'))),
    h('tbody', {}, rows.map((row) => h('tr', { className: row.flagged ? 'flagged' : '', 'data-flagged': String(row.flagged === true) },
      h('td', { className: 'number' }, row.rank),
      h('td', { className: 'mono' }, link(`/ui/datasets/${enc(targetName)}?record=${enc(row.id)}&colour=${status.kind === 'projection' ? 'label' : `score:${status.id}`}`, row.id)),
      h('td', { className: 'number' }, formatNumber(row.score)),
      h('td', {}, row.flagged === true ? h('span', { className: 'pill flag' }, 'flagged') : row.flagged === false ? h('span', { className: 'muted' }, 'ok') : '–'),
      h('td', {}, evidenceInWords(status.kind, row))))),
  );
}

function driftTable(rows) {
  return h('table', { id: 'results-table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'class'), h('th', { className: 'number' }, 'reference share'),
      h('th', { className: 'number' }, 'target share'), h('th', { className: 'number' }, 'change'))),
    h('tbody', {}, rows.map((row) => h('tr', {},
      h('td', {}, row.class ?? '–'), h('td', { className: 'number' }, formatNumber(row.reference_share)),
      h('td', { className: 'number' }, formatNumber(row.target_share)), h('td', { className: 'number' }, formatNumber(row.change))))),
  );
}

async function pairsView(rows, status, targetName) {
  const otherDataset = rows.find((row) => row.other_dataset)?.other_dataset || targetName;
  const left = await fetchRecords(targetName, [...new Set(rows.map((row) => row.id))]);
  const right = otherDataset === targetName
    ? await fetchRecords(targetName, [...new Set(rows.map((row) => row.other_id))])
    : await fetchRecords(otherDataset, [...new Set(rows.map((row) => row.other_id))]);
  const side = (record, id, dataset) => h('div', { className: 'card' },
    record ? preview(record) : null,
    record ? recordFields(record) : h('p', { className: 'muted' }, `${id} (no longer in ${dataset})`),
    h('p', {}, link(`/ui/datasets/${enc(dataset)}?record=${enc(id)}`, 'on the map')));
  return h('div', { className: 'pairs', id: 'pairs' }, rows.map((row) => h('div', { className: 'pair', 'data-rank': row.rank },
    side(left.get(row.id), row.id, targetName),
    h('div', { className: 'between' }, h('div', {}, `#${row.rank}`), h('div', {}, `distance ${formatNumber(row.distance)}`),
      h('div', {}, `score ${formatNumber(row.score)}`), row.exact ? h('span', { className: 'pill flag' }, 'exact copy') : null),
    side(right.get(row.other_id), row.other_id, otherDataset))));
}

// ---------------------------------------------------------------- start

api('/v1/version')
  .then((version) => {
    document.getElementById('server-version').textContent = `mutant ${version.mutant} · protocol ${version.protocol} · ClickHouse ${version.clickhouse}`;
  })
  .catch(() => {});
render();
