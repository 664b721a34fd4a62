// The Train tab's view of a run as it trains: conv1's and conv2's filters, the current guess on 20 fixed
// test digits (green right, red wrong) and the per-digit test accuracy after each epoch. Its value is the
// run's latest snapshot (mnist_core/watch.py, merged by the training service): a dict, so Gradio streams
// only the keys that changed (the digits once, then filters and guesses). Run by Gradio as the gr.HTML's
// js_on_load (`element`, `props`, `watch`). Markup for tests: #train-view[data-state][data-updates],
// section[data-filters] canvases, .tv-grid figure[data-label][data-guess].right|.wrong, #per-class-epochs.
// el(), mapCanvas() and the weights' colour map come from the toolkit, window.MnistApp (web/kit.js).
const { el, mapCanvas, signedColour } = window.MnistApp;
const root = element.querySelector('#train-view');
const body = root.querySelector('.tv-body');
const note = root.querySelector('.tv-note');
const where = root.querySelector('.tv-where');
const grid = root.querySelector('.tv-grid');
const score = root.querySelector('.tv-score');
const table = root.querySelector('#per-class-epochs');
const SCALE = { conv1: 8, conv2: 5 };   // CSS px per weight
let digits = null, digitsSrc = null, figures = [], updates = 0;

function int8s(b64) {
  const raw = atob(b64), out = new Int8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = (raw.charCodeAt(i) << 24) >> 24;
  return out;
}

// one canvas per output filter: its input channels' 3x3 kernels side by side, 1 px apart
function drawBank(name, layer) {
  const bank = root.querySelector(`section[data-filters="${name}"] .tv-bank`);
  const [cout, cin, kh, kw] = layer.shape, q = int8s(layer.q);
  const w = cin * (kw + 1) - 1, s = SCALE[name];
  if (bank.children.length !== cout) {
    bank.replaceChildren();
    for (let o = 0; o < cout; o++) {
      bank.append(mapCanvas(w, kh, s, { 'data-filter': o, title: `${name} filter ${o}` }));
    }
  }
  root.querySelector(`section[data-filters="${name}"]`).dataset.scale = layer.scale;
  const n = cin * kh * kw;
  for (let o = 0; o < cout; o++) {
    const cv = bank.children[o], ctx = cv.getContext('2d'), img = ctx.createImageData(w, kh), px = img.data;
    let top = 1;   // each filter by its own largest weight (as ConvNetJS shows them): its pattern, not its size
    for (let j = o * n; j < (o + 1) * n; j++) top = Math.max(top, Math.abs(q[j]));
    for (let i = 0; i < cin; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          signedColour(px, 4 * (y * w + i * (kw + 1) + x), q[((o * cin + i) * kh + y) * kw + x] / top);
        }
      }
    }
    ctx.putImageData(img, 0, 0);
  }
}

function buildGrid(labels) {
  grid.replaceChildren();
  figures = labels.map((label, i) => {
    const f = el('figure', { 'data-index': i, 'data-label': label });
    const cv = el('canvas', { width: 28, height: 28 });   // shown at 42 px (trainview.css)
    f.append(cv, el('figcaption', {}, '?'));
    grid.append(f);
    return f;
  });
  paintDigits();
}

function paintDigits() {
  if (!digits || !digits.complete) return;
  figures.forEach((f, i) => f.querySelector('canvas').getContext('2d').drawImage(digits, 28 * i, 0, 28, 28, 0, 0, 28, 28));
}

function showGuesses(v) {
  let right = 0;
  figures.forEach((f, i) => {
    const g = v.guesses[i], ok = g === Number(f.dataset.label);
    right += ok;
    f.dataset.guess = g;
    f.dataset.right = ok;
    f.className = ok ? 'right' : 'wrong';
    f.querySelector('figcaption').textContent = `${g} (${Math.round(v.confidence[i])}%)`;
    f.title = `a ${f.dataset.label}; the network says ${g} (${v.confidence[i]}%)`;
  });
  score.textContent = `: ${right} of ${figures.length} read right now`;
  root.dataset.right = right;
}

function showPerClass(rows) {
  const head = table.tHead, tb = table.tBodies[0];
  if (!head.rows.length) {
    const tr = el('tr'); tr.append(el('th', {}, 'epoch'));
    for (let d = 0; d < 10; d++) tr.append(el('th', {}, String(d)));
    head.append(tr);
  }
  while (tb.rows.length > rows.length) tb.deleteRow(-1);
  for (let e = tb.rows.length; e < rows.length; e++) {
    const tr = el('tr', { 'data-epoch': e + 1 }); tr.append(el('th', {}, String(e + 1)));
    rows[e].forEach((a) => {
      const td = el('td', {}, a == null ? '-' : a.toFixed(1));
      if (a != null) td.style.background = `hsla(${Math.round(120 * Math.max(0, Math.min(1, (a - 80) / 20)))}, 70%, 50%, 0.35)`;
      tr.append(td);
    });
    tb.append(tr);
  }
  table.closest('section').hidden = !rows.length;
}

function render() {
  const v = props.value;
  if (!v || typeof v !== 'object' || !v.guesses) {   // idle, queued, loading: nothing to show yet
    body.hidden = true; note.hidden = false;
    root.dataset.state = 'empty';
    table.tBodies[0].replaceChildren();
    return;
  }
  note.hidden = true; body.hidden = false;
  if (v.digits && v.digits !== digitsSrc) {
    digitsSrc = v.digits;
    digits = new Image();
    digits.onload = paintDigits;
    digits.src = `data:image/png;base64,${v.digits}`;
  }
  if (v.labels && figures.length !== v.labels.length) buildGrid(v.labels);
  for (const name of ['conv1', 'conv2']) if (v[name]) drawBank(name, v[name]);
  showGuesses(v);
  showPerClass(v.per_class || []);
  where.textContent = v.batch === 0 ? 'Before the first step: random filters, guesses by chance.'
    : (v.per_class || []).length >= v.epoch && v.batch === v.batches ? `After epoch ${v.epoch} and its test.`
      : `Epoch ${v.epoch}, batch ${v.batch} of ${v.batches}.`;
  root.dataset.state = 'live';
  root.dataset.epoch = v.epoch;
  root.dataset.batch = v.batch;
  root.dataset.updates = ++updates;
}

watch('value', render);
render();
