// The Draw tab's canvas: a gr.HTML custom component (Gradio runs this with `element`, `props`,
// `trigger`, `watch`). Its value is the strokes, not a picture: props.value = JSON {width, height,
// brush, strokes}.
// The live answer is computed here, in the page (web/mnistnet.js, loaded with web/kit.js before this
// file), with the weights of the model chosen in the picker (props.model, a registry key; GET
// mnist/weights?key=...). This file owns window.MnistApp's net, key, model, pending, failures and live
// (web/kit.js lists who writes what and the events).
// On every animation frame in which the drawing changed, props.value is set and Gradio fires `change`,
// whose listener is JavaScript only (web/live_event.js): label, bars and 28x28 view, no request.
// Until the weights have arrived, or if they are refused or the computation throws, the server
// answers instead, as before: `input` (at most every 100 ms while drawing, and at pen-up) runs
// /classify_strokes. When the drawing settles (pen up, undo, clear) and "Show why" is on, the page
// explains it too: `submit` (web/explain_event.js, no request) once the model's look-alike index is here
// (web/explain.js, fetched while "Show why" is on); until then, or if that fails, `release` asks the
// server (/explain_strokes), once per settled drawing.
// Coordinates are in a fixed logical square (SIDE units) whatever size the canvas is shown at, so
// the brush keeps its size relative to the square.
const SIDE = 320;          // logical units of the square
const BRUSH = 22;          // brush width in logical units
const THROTTLE_MS = 100;   // server fallback: while drawing, ask at most every 100 ms (trailing edge) ...
const MIN_STEP = 1.0;      // ... and skip points closer than 1 unit to the previous one
const MAX_STROKES = 200, MAX_POINTS = 19000;  // the server's bounds are 200 / 20,000
const MARGIN = 0.5 * SIDE; // points are kept within half a square outside it (the server's bound)
const WEIGHTS_URL = 'mnist/weights';

const root = element.querySelector('.sketch');
const canvas = element.querySelector('canvas');
const undoBtn = element.querySelector('.sketch-undo');
const clearBtn = element.querySelector('.sketch-clear');
const ctx = canvas.getContext('2d');
let strokes = [];          // finished strokes: arrays of [x, y]
let current = null;        // the stroke being drawn
let pointerId = null;      // the one pointer that draws (a second finger is ignored)
let timer = null, lastSent = 0, points = 0, frame = null;

const round1 = v => Math.round(v * 10) / 10;
const bound = v => Math.min(Math.max(v, -MARGIN), SIDE + MARGIN);

function toUnits(e) {
  const r = canvas.getBoundingClientRect();
  return [round1(bound((e.clientX - r.left) / r.width * SIDE)), round1(bound((e.clientY - r.top) / r.height * SIDE))];
}

// ------------------------------------------------------------------ the page's own network
// app.net: the loaded network, read by the `change` listener (web/live_event.js); null: the server answers.
const app = window.MnistApp;
root.dataset.live = 'server';

// server | loading | page: in the shared object (the network view's note) and on the canvas (for tests and the curious)
function setMode(mode) { app.live = mode; root.dataset.live = mode; }

async function loadModel(key) {
  // window.MNIST_SERVER_ONLY (set before the page loads): the server answers, as before this page
  // had a network of its own (benchmarks/browser_latency.py measures both).
  app.model = key;   // the chosen model, whichever side computes (the network view's server fallback)
  if (!key || window.MNIST_SERVER_ONLY) { app.net = null; app.key = null; setMode('server'); return; }
  if ((app.net && app.key === key) || app.pending === key) return;   // loaded, or on its way
  app.pending = key;
  setMode('loading');
  try {
    const url = new URL(WEIGHTS_URL, document.baseURI);
    url.searchParams.set('key', key);
    const res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(`weights: HTTP ${res.status}`);
    const net = window.MnistNet.loadNet(await res.json());
    if (app.pending !== key) return;           // another model was chosen meanwhile
    app.pending = null;
    app.net = net; app.key = key; app.failures = 0;
    setMode('page');
    if (app.showWhy !== false && window.MnistExplain) window.MnistExplain.load(key);   // "Show why" in the page
    if (strokes.length || current) trigger('change');   // re-label the drawing with the new model at once
  } catch (err) {
    if (app.pending !== key) return;
    app.pending = null;
    app.net = null; app.key = null;
    setMode('server');
    console.warn('MNIST: the page computes no live label (the server answers instead):', err.message);
    if (strokes.length || current) trigger('input');
  }
}
app.on('fallback', () => {     // the listener could not compute: the server answers from now on, for this model
  app.net = null; app.failures += 1; setMode('server'); trigger('input');
});
app.on('choose', key => loadModel(key));
app.on('whyFallback', () => setTimeout(() => trigger('release'), 0));   // the page could not explain: the server does
watch('model', () => loadModel(props.model));
loadModel(props.model);

function pen() {
  const k = canvas.width / SIDE;
  ctx.setTransform(k, 0, 0, k, 0, 0);
  ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.lineWidth = BRUSH;
  ctx.strokeStyle = '#000'; ctx.fillStyle = '#000';
}

function dot(p) { ctx.beginPath(); ctx.arc(p[0], p[1], BRUSH / 2, 0, 2 * Math.PI); ctx.fill(); }

function segment(a, b) { ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke(); }

function paint(s) {
  if (s.length === 1) { dot(s[0]); return; }
  ctx.beginPath(); ctx.moveTo(s[0][0], s[0][1]);
  for (let i = 1; i < s.length; i++) ctx.lineTo(s[i][0], s[i][1]);
  ctx.stroke();
}

function redraw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  pen();
  strokes.forEach(paint);
  if (current) paint(current);
}

function updateTools() {
  const n = strokes.length + (current ? 1 : 0);
  root.dataset.strokes = String(n);
  undoBtn.disabled = n === 0;
  clearBtn.disabled = n === 0;
}

// Crisp on high-DPI screens: the backing store follows the displayed size x devicePixelRatio.
function fit() {
  const r = canvas.getBoundingClientRect();
  if (!r.width) return;
  const px = Math.max(1, Math.round(r.width * (window.devicePixelRatio || 1)));
  if (canvas.width !== px || canvas.height !== px) { canvas.width = px; canvas.height = px; redraw(); }
}
new ResizeObserver(fit).observe(canvas);
fit();

function value() {
  const all = current && current.length ? strokes.concat([current]) : strokes;
  return JSON.stringify({ width: SIDE, height: SIDE, brush: BRUSH, strokes: all });
}

// Sets the value (Gradio dispatches `change`: the page's own label); without the page's network, asks
// the server too (`input`, after Gradio has the new value).
function send() {
  clearTimeout(timer); timer = null;
  lastSent = performance.now();
  const v = value();
  if (v !== props.value) props.value = v;
  if (!app.net) setTimeout(() => trigger('input'), 0);
}

function schedule() {
  if (!app.net) {                          // server fallback: throttled
    if (timer === null) timer = setTimeout(send, Math.max(0, THROTTLE_MS - (performance.now() - lastSent)));
    return;
  }
  if (frame === null) frame = requestAnimationFrame(() => { frame = null; send(); });   // page: every frame
}

// After props.value is set (Gradio has the new value), tell the app the drawing is settled: the
// explanation, when "Show why" is on (none is asked for when it is off), computed in the page when it
// can (`submit`), else by the server (`release`); without the page's network, the network view asks the
// server for the maps too.
function settled() {
  if (!app.net) setTimeout(() => app.emit('settle', { value: props.value, model: app.model }), 0);   // the network view
  const why = window.MnistExplain;
  if (why) why.cancel();                   // an explanation of the drawing before stops
  if (app.showWhy === false) return;
  if (app.net && why && why.ready(app.key)) { setTimeout(() => trigger('submit'), 0); return; }
  if (app.net && why) why.load(app.key);   // the next pen-up, in the page
  setTimeout(() => trigger('release'), 0);
}

function finish() {
  if (current === null) return;
  strokes.push(current);
  current = null; pointerId = null;
  if (frame !== null) { cancelAnimationFrame(frame); frame = null; }
  updateTools();
  send();                                   // always once on pointer-up
  settled();
}

canvas.addEventListener('pointerdown', e => {
  if (pointerId !== null || (e.pointerType === 'mouse' && e.button !== 0)) return;
  if (strokes.length >= MAX_STROKES || points >= MAX_POINTS) return;
  e.preventDefault();
  canvas.focus({ preventScroll: true });
  pointerId = e.pointerId;
  root.dataset.pointer = e.pointerType;     // mouse | pen | touch (for tests and curious users)
  try { canvas.setPointerCapture(e.pointerId); } catch (_) { /* synthetic events */ }
  current = [toUnits(e)];
  points += 1;
  pen(); dot(current[0]);
  updateTools();
});

canvas.addEventListener('pointermove', e => {
  if (e.pointerId !== pointerId || current === null) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const ev of (events.length ? events : [e])) {
    const p = toUnits(ev), q = current[current.length - 1];
    if (Math.hypot(p[0] - q[0], p[1] - q[1]) < MIN_STEP || points >= MAX_POINTS) continue;
    current.push(p); points += 1;
    segment(q, p);
  }
  schedule();
});

for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
  canvas.addEventListener(type, e => { if (e.pointerId === pointerId) finish(); });
}

function undo() {
  if (current) { current = null; pointerId = null; } else strokes.pop();
  points = strokes.reduce((n, s) => n + s.length, 0);
  redraw(); updateTools(); send(); settled();
}

function clear() {
  strokes = []; current = null; pointerId = null; points = 0;
  redraw(); updateTools(); send(); settled();
}

undoBtn.addEventListener('click', undo);
clearBtn.addEventListener('click', clear);

// Ctrl/Cmd+Z undoes, Escape clears: while the Draw tab is shown and no text field has the focus.
document.addEventListener('keydown', e => {
  if (!element.isConnected || element.offsetParent === null) return;
  const t = e.target;
  if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === 'z') { e.preventDefault(); undo(); }
  else if (e.key === 'Escape') { clear(); }
});
