// The network view (Draw tab): every stage's activation maps for the current drawing, from the page's
// own forward pass (web/mnistnet.js; window.MnistApp's 'result' event and `last`, from web/live_event.js):
// no request per update. Drawn in the animation frame after the label, skipped while the view is off
// screen. A page without a network of its own (its weights did not load) asks the server instead when the
// drawing settles (MnistApp's 'settle' event; POST mnist/activations, once per pen-up; state 'served').
// Click a map: that unit's incoming weights (the page's folded weights), its activation on the drawing,
// and its top 9 training digits (GET mnist/unit, once per click) with the peak's receptive field.
// Run by Gradio as the gr.HTML's js_on_load (`element`). Markup for tests: #network, one element per
// stage with data-layer / data-channels; window.MnistApp.network = {updates, shown, select}.
// The stages are the server's (props.stages: mnist_core/arch.py view_table(), the same table as the weights
// payload's "stages"): name, channels, side, kind, which layer of the page's network computes it (before its
// pool or after), whose BatchNorm is folded into its weights, its receptive field. No layer table here.
const root = element.querySelector('#network');
const stagesEl = root.querySelector('.net-stages');
const unitEl = root.querySelector('.net-unit');
const note = root.querySelector('.net-note');
const UNIT_URL = 'mnist/unit';
const ACTIVATIONS_URL = 'mnist/activations';
const STAGES = props.stages || [];
const MAPS = STAGES.filter(s => s.kind === 'map');           // a clickable unit per channel
const cellPx = side => Math.min(12, Math.ceil(54 / side));   // CSS px per cell: maps >= 54 px wide, cells <= 12 px
const ROW_PX = { pool: 16, logits: 22 };                       // px per value of the one-row stages
const app = window.MnistApp;   // the shared state and the toolkit (web/kit.js)
const { el, mapCanvas, paintMap: paint } = app;
const state = app.network = { updates: 0, renderMs: 0, shown: {}, selected: null, visible: true };
let frame = null, dirty = false, latest = null;
let served = null, asked = 0;   // the server's maps of the settled drawing (no network in the page)

// ------------------------------------------------------------------ layout (built once)
const canvases = {};
function mapStage(s) {
  const sec = el('section', { class: 'net-stage', 'data-layer': s.name, 'data-channels': s.channels, 'data-size': s.side });
  const h = el('h4', {}, `${s.name} `);
  h.append(el('span', {}, `${s.channels} x ${s.side}x${s.side}, receptive field ${s.receptive_field.size} px`));
  const maps = el('div', { class: 'net-maps' });
  canvases[s.name] = [];
  for (let c = 0; c < s.channels; c++) {
    const cv = mapCanvas(s.side, s.side, cellPx(s.side), { 'data-channel': c, title: `${s.name} channel ${c}: click to see what it looks for`,
                                                           role: 'button', tabindex: '0', 'aria-label': `${s.name} channel ${c}` });
    maps.append(cv); canvases[s.name].push(cv);
  }
  sec.append(h, maps);
  return sec;
}
function rowStage(s, before) {   // one value per channel: the pooled features, or the logits
  const sec = el('section', { class: 'net-stage', 'data-layer': s.name, 'data-channels': s.channels, 'data-size': 1 });
  const h = el('h4', {}, `${s.name} `);
  h.append(el('span', {}, s.kind === 'logits' ? `the ${s.channels} outputs (logits; digits 0-${s.channels - 1})`
    : `the ${s.channels} pooled features (mean of each ${before.name} map)`));
  const scale = ROW_PX[s.kind];
  const cv = mapCanvas(s.channels, 1, scale);
  canvases[s.name] = [cv];
  const maps = el('div', { class: 'net-maps' });
  if (s.kind === 'logits') {
    const box = el('div'), digits = el('div', { class: 'net-out-digits' });
    for (let d = 0; d < s.channels; d++) { const n = el('span', {}, String(d)); n.style.width = `${scale}px`; digits.append(n); }
    box.append(cv, digits); maps.append(box);
  } else maps.append(cv);
  sec.append(h, maps);
  return sec;
}
STAGES.forEach((s, i) => stagesEl.append(s.kind === 'map' ? mapStage(s) : rowStage(s, STAGES[i - 1])));

// ------------------------------------------------------------------ colours
// ReLU stages (all >= 0): black -> red -> yellow -> white by value / the stage's maximum; stages with
// negative values (transition, out): blue (negative) / black / orange (positive) by the largest |value|
// (the kit's paintMap, as `paint`).
function range(data) {
  let lo = Infinity, hi = -Infinity;
  for (const v of data) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [Math.min(lo, 0), Math.max(hi, 0)];
}

// The maps of a prediction as the view defines them: {name: Float64Array} (conv6: its 4x4 maps).
function viewData(r) {
  const out = {};
  for (const s of STAGES) out[s.name] = s.before_pool ? r.stages[s.layer].pre.data : r.stages[s.layer].data;
  return out;
}

// The server's flat maps (POST mnist/activations) in the same form.
function servedData(stages) {
  const out = {};
  for (const [name, list] of Object.entries(stages)) out[name] = Float64Array.from(list);
  return out;
}

function render() {
  frame = null;
  const t0 = performance.now();
  if (!state.visible || root.offsetParent === null) { dirty = true; return; }
  dirty = false;
  const r = latest;
  const fromServer = !app.net && served && served.stages;
  if (!fromServer && (!app.net || !r || r.empty || !r.stages)) {
    for (const list of Object.values(canvases)) for (const cv of list) paint(cv, [], 0, 0, 0, 0);
    state.shown = {};
    const mode = app.net ? 'empty' : (app.live === 'loading' ? 'loading' : 'server');
    root.dataset.state = mode;
    if (mode !== 'empty') setTimeout(schedule, 500);   // until the page's network is there (cheap: 2 per second, no request)
    note.textContent = {
      empty: 'Draw a digit: every layer of the network lights up as you draw. Click a map to see what that unit looks for.',
      loading: 'Loading the network\'s weights into the page...',
      server: (served && served.error ? `The server could not compute the maps: ${served.error}. ` : '')
        + 'This page has no copy of the network (its weights did not load): the maps come from the server '
        + 'each time you lift the pen.' }[mode];
  } else {
    const d = fromServer ? servedData(served.stages) : viewData(r);
    for (const { name, channels, side, kind } of STAGES) {
      const [lo, hi] = range(d[name]);
      if (kind !== 'map') { paint(canvases[name][0], d[name], 0, d[name].length, lo, hi); continue; }
      for (let c = 0; c < channels; c++) paint(canvases[name][c], d[name], c * side * side, side * side, lo, hi);
    }
    state.shown = d;
    root.dataset.state = fromServer ? 'served' : 'live';
    note.textContent = (fromServer ? 'From the server (this page has no copy of the network), as of the last pen-up. ' : '')
      + `Colours: per layer, black = 0 up to white = that layer's largest value (blue/orange: negative/positive). `
      + 'Each block is shown after its ReLU, before its BatchNorm. Click a map to see what that unit looks for.';
  }
  if (state.selected) drawUnitActivation();
  state.updates += 1;
  state.renderMs += performance.now() - t0;       // for benchmarks/network_view.py
  root.dataset.updates = String(state.updates);
}
function schedule() { if (frame === null) frame = requestAnimationFrame(render); }
app.on('result', r => { latest = r; schedule(); });
// No network in the page: the canvas emits 'settle' when the drawing settles (pen up, undo, clear).
app.on('settle', async ({ value, model: key }) => {
  const n = ++asked;
  try {
    const res = await fetch(new URL(ACTIVATIONS_URL, document.baseURI), {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ strokes: value || '', key: key || '' }) });
    const body = await res.json();
    if (n !== asked) return;                     // a newer drawing was sent meanwhile
    served = body.error ? { error: body.error } : body;
  } catch (err) {
    if (n === asked) served = { error: err.message };
  }
  schedule();
});
new IntersectionObserver(entries => {
  state.visible = entries.some(e => e.isIntersecting);
  if (state.visible && dirty) schedule();
}).observe(root);
if (app.last) { latest = app.last; }
schedule();


// ------------------------------------------------------------------ one unit
function stageInfo(name) { return MAPS.find(s => s.name === name); }

function drawUnitActivation() {
  const sel = state.selected, cv = unitEl.querySelector('canvas.net-unit-act'), txt = unitEl.querySelector('.net-unit-peak');
  if (!sel || !cv) return;
  const { side } = stageInfo(sel.stage), d = state.shown[sel.stage];
  if (!d) { paint(cv, [], 0, 0, 0, 0); txt.textContent = 'nothing drawn'; return; }
  const off = sel.channel * side * side;
  let hi = 0, at = 0;
  for (let i = 0; i < side * side; i++) if (d[off + i] > hi) { hi = d[off + i]; at = i; }
  paint(cv, d, off, side * side, 0, hi);
  txt.textContent = `peak ${hi.toFixed(3)} at row ${Math.floor(at / side)}, column ${at % side}`;
}

function weightImages(sel) {
  const net = app.net, L = net && net.layers[stageInfo(sel.stage).layer];
  if (!L) {
    const row = el('div', { class: 'row net-unit-weights' });
    row.append(el('span', { class: 'muted' }, 'the weights are on their way from the server'));
    return row;
  }
  return weightRow(L.w, L.cin, L.k, sel.channel * L.cin * L.k * L.k);
}

// One k x k image per input channel of the weights w[base ...] (cin x k x k), one colour scale.
function weightRow(w, cin, k, base) {
  const row = el('div', { class: 'row net-unit-weights' }), kk = k * k;
  let span = 0;
  for (let i = 0; i < cin * kk; i++) span = Math.max(span, Math.abs(w[base + i]));
  for (let c = 0; c < cin; c++) {
    const cv = mapCanvas(k, k, k === 1 ? 14 : 10, { 'data-input': c, title: `from input channel ${c}` });
    paint(cv, w, base + c * kk, kk, -span, span);
    row.append(cv);
  }
  return row;
}

function digitFigure(t) {
  const cv = mapCanvas(28, 28, 2);
  const ctx = cv.getContext('2d'), img = ctx.createImageData(28, 28);
  t.image.flat().forEach((v, i) => { img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255; });
  ctx.putImageData(img, 0, 0);
  const [top, left, size] = t.box;
  ctx.strokeStyle = '#f00'; ctx.lineWidth = 1;
  ctx.strokeRect(left + 0.5, top + 0.5, Math.min(size, 28 - left) - 1, Math.min(size, 28 - top) - 1);
  const f = el('figure', { class: 'net-top', 'data-index': t.index, 'data-score': t.score });
  f.append(cv, el('figcaption', {}, `#${t.index}: ${t.label} (${t.score.toFixed(2)})`));
  return f;
}

async function loadTop(sel, tries = 0) {
  const box = unitEl.querySelector('.net-unit-top');
  try {
    const url = new URL(UNIT_URL, document.baseURI);
    url.searchParams.set('key', app.key || app.model || ''); url.searchParams.set('stage', sel.stage); url.searchParams.set('channel', sel.channel);
    const res = await fetch(url, { credentials: 'same-origin' });
    const body = await res.json();
    if (state.selected !== sel) return;
    box.replaceChildren();
    if (body.error) { box.append(el('p', { class: 'muted net-unit-note' }, body.error)); return; }
    if (!app.net && body.weights) unitEl.querySelector('.net-unit-weights').replaceWith(weightRow(body.weights.flat(2), body.weights.length, body.weights[0].length, 0));
    if (!body.ready) {
      box.append(el('p', { class: 'muted net-unit-note' }, body.note));
      if (tries < 40 && !/^No top digits/.test(body.note)) setTimeout(() => state.selected === sel && loadTop(sel, tries + 1), 3000);
      return;
    }
    const row = el('div', { class: 'row' });
    body.top.forEach(t => row.append(digitFigure(t)));
    box.append(row);
    unitEl.dataset.top = String(body.top.length);
  } catch (err) {
    if (state.selected === sel) box.replaceChildren(el('p', { class: 'muted net-unit-note' }, `No top digits: ${err.message}`));
  }
}

function select(stage, channel) {
  const info = stageInfo(stage);
  if (!info || !(channel >= 0 && channel < info.channels)) return false;
  for (const cv of root.querySelectorAll('.net-maps canvas.selected')) cv.classList.remove('selected');
  canvases[stage][channel].classList.add('selected');
  const sel = state.selected = { stage, channel };
  const { side, folds } = info, rf = info.receptive_field.size, L = app.net && app.net.layers[info.layer];
  unitEl.hidden = false;
  unitEl.dataset.stage = stage; unitEl.dataset.channel = String(channel); unitEl.dataset.top = '0';
  const head = el('h4', {}, `${stage}, channel ${channel}: what it looks for (receptive field ${rf}x${rf} px)`);
  const close = el('button', { type: 'button', class: 'net-close' }, 'close');
  close.addEventListener('click', () => { state.selected = null; unitEl.hidden = true; canvases[stage][channel].classList.remove('selected'); });
  head.append(close);
  const wNote = folds ? `with ${folds}'s BatchNorm folded in, as the page computes` : 'as trained (no BatchNorm before it)';
  const act = mapCanvas(side, side, Math.max(cellPx(side) * 2, 6), { class: 'net-unit-act' });
  unitEl.replaceChildren(head,
    el('p', { class: 'muted' }, `Incoming weights, one ${L ? L.k : ''}x${L ? L.k : ''} image per input channel (${L ? L.cin : ''}), ${wNote}; `
      + `blue negative, orange positive${L ? `, bias ${L.b[channel].toFixed(3)}` : ''}:`),
    weightImages(sel),
    el('p', { class: 'muted' }, 'Its activation on your drawing:'), act, el('p', { class: 'net-unit-peak muted' }),
    el('p', { class: 'muted' }, 'The 9 training digits (of 60,000) that excite it most, the receptive field of the peak outlined:'),
    el('div', { class: 'net-unit-top' }, ''));
  drawUnitActivation();
  loadTop(sel);
  return true;
}
state.select = select;
stagesEl.addEventListener('click', e => {
  const cv = e.target.closest('canvas[data-channel]');
  if (cv) select(cv.closest('[data-layer]').dataset.layer, Number(cv.dataset.channel));
});
stagesEl.addEventListener('keydown', e => {
  const cv = e.target.closest && e.target.closest('canvas[data-channel]');
  if (cv && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); cv.click(); }
});
