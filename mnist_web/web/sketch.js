// The Draw tab's canvas: a gr.HTML custom component (Gradio runs this with `element`, `props`,
// `trigger`). It sends strokes, not pictures: props.value = JSON {width, height, brush, strokes},
// and Gradio fires `change` whenever props.value changes (the live label). When the drawing is
// finished for now (pen lifted, undo, clear) it also fires `release`: the slower explanation
// ("Show why") runs then, as its own event, so the live label never waits for it.
// Coordinates are in a fixed logical square (SIDE units) whatever size the canvas is shown at, so
// the brush keeps its size relative to the square.
const SIDE = 320;          // logical units of the square (the server renders at this size)
const BRUSH = 22;          // brush width in logical units
const THROTTLE_MS = 100;   // while drawing, send at most every 100 ms (trailing edge) ...
const MIN_STEP = 1.0;      // ... and skip points closer than 1 unit to the previous one
const MAX_STROKES = 200, MAX_POINTS = 19000;  // the server's bounds are 200 / 20,000

const root = element.querySelector('.sketch');
const canvas = element.querySelector('canvas');
const undoBtn = element.querySelector('.sketch-undo');
const clearBtn = element.querySelector('.sketch-clear');
const ctx = canvas.getContext('2d');
let strokes = [];          // finished strokes: arrays of [x, y]
let current = null;        // the stroke being drawn
let pointerId = null;      // the one pointer that draws (a second finger is ignored)
let timer = null, lastSent = 0, points = 0;

const round1 = v => Math.round(v * 10) / 10;

function toUnits(e) {
  const r = canvas.getBoundingClientRect();
  return [round1((e.clientX - r.left) / r.width * SIDE), round1((e.clientY - r.top) / r.height * SIDE)];
}

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

function send() {
  clearTimeout(timer); timer = null;
  lastSent = performance.now();
  const v = value();
  if (v !== props.value) props.value = v;   // Gradio dispatches `change` on a new value
}

function schedule() {
  if (timer !== null) return;
  timer = setTimeout(send, Math.max(0, THROTTLE_MS - (performance.now() - lastSent)));
}

// After props.value is set (Gradio has the new value), tell the app the drawing is settled.
function settled() { setTimeout(() => trigger('release'), 0); }

function finish() {
  if (current === null) return;
  strokes.push(current);
  current = null; pointerId = null;
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
