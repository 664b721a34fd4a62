// My digits (issue 33): your own drawings with the digit you meant, kept in this browser, to teach the
// model your handwriting. The js_on_load of two gr.HTML components (mnist_web/tabs/mydigits.py), told
// apart by props.part: "buttons", the ten "It's a ..." buttons under the label, and "panel", the grid.
// Both share one store, window.MnistApp.digits (web/kit.js's shared object), made by whichever loads first:
//   localStorage 'mnist-my-digits' = {version: 1, items: [{id, label, strokes}]}, at most props.limit
//   (500) drawings; strokes: the canvas's JSON value ({width, height, brush, strokes}) as the canvas
//   sent it (web/mydigits_current.js hands the current one over on every change of the canvas).
//   Nothing goes to the server until Teach, Download or an upload (web/mydigits_send.js, _restore.js).
// The keys 0-9 save the drawing too while the canvas has the focus. A saved drawing clears the canvas
// for the next one (its own shortcut, Escape: this file never touches the canvas's markup). The grid shows each drawing as the network sees it (28x28, MnistNet.prepareStrokes:
// the twin of the server's rasteriser) with what the chosen model says of it now (the page's network,
// window.MnistApp.net, when loaded: re-read when another model is chosen), per-digit counts, remove
// one, clear all (pressed twice). Full (the limit, or the browser's storage): said plainly, nothing lost.
(() => {
  const STORE_KEY = 'mnist-my-digits';
  const TOLERANCE = 0.5;        // canvas units (1/320 of the square; ~0.03 of an MNIST pixel): points a saved
                                // stroke drops, as they change nothing the network could see
  const MAX_SEND_CHARS = 900000;   // all drawings as JSON: what one Teach request may carry (the server's body limit)
  const app = window.MnistApp, Net = window.MnistNet;
  const root = element.querySelector('.mydigits');
  if (!root) return;

  // A stroke with the points that lie within TOLERANCE of the line through their neighbours left out
  // (Ramer-Douglas-Peucker): a mouse stroke of 300 points keeps ~30-60, the same ink.
  function simplify(points) {
    if (points.length < 3) return points;
    const keep = new Uint8Array(points.length);
    keep[0] = keep[points.length - 1] = 1;
    const stack = [[0, points.length - 1]];
    while (stack.length) {
      const [a, b] = stack.pop();
      const [ax, ay] = points[a], [bx, by] = points[b], dx = bx - ax, dy = by - ay, len = Math.hypot(dx, dy);
      let far = -1, worst = TOLERANCE;
      for (let i = a + 1; i < b; i++) {
        const [px, py] = points[i];
        const d = len ? Math.abs(dy * (px - ax) - dx * (py - ay)) / len : Math.hypot(px - ax, py - ay);
        if (d > worst) { worst = d; far = i; }
      }
      if (far >= 0) { keep[far] = 1; stack.push([a, far], [far, b]); }
    }
    return points.filter((_, i) => keep[i]);
  }

  // ------------------------------------------------------------------ the store (once per page)
  function makeStore(limit) {
    const listeners = [];
    let items = [], current = null, persistent = true;

    const valid = it => it && typeof it.id === 'string' && Number.isInteger(it.label) && it.label >= 0
      && it.label <= 9 && it.strokes && Array.isArray(it.strokes.strokes);
    function read() {
      try {
        const raw = localStorage.getItem(STORE_KEY);
        const data = raw ? JSON.parse(raw) : null;
        items = data && Array.isArray(data.items) ? data.items.filter(valid).slice(0, limit) : [];
      } catch (e) { persistent = false; items = []; }
    }
    function tell(type, detail) { listeners.forEach(fn => fn(type, detail)); }
    // Keep the new list (and show it): null, or why it could not be kept (then nothing changes).
    function keep(next) {
      try {
        localStorage.setItem(STORE_KEY, JSON.stringify({ version: 1, items: next }));
      } catch (e) {
        if (persistent && e && (e.name === 'QuotaExceededError' || e.code === 22)) {
          return "your browser's storage is full. Download My digits, then remove some drawings";
        }
        if (persistent) say('This browser does not let the page keep data: My digits last until you reload.', 'panel');
        persistent = false;   // storage blocked: kept in this page only
      }
      items = next;
      tell('items', items);
      return null;
    }
    const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    const count = d => items.reduce((n, it) => n + (it.label === d), 0);
    const article = d => (d === 8 ? `an ${d}` : `a ${d}`);

    function add(label) {
      let drawing = null;
      try { drawing = current ? JSON.parse(current) : null; } catch (e) { drawing = null; }
      const p = drawing && drawing.strokes && drawing.strokes.length ? Net.prepareStrokes(drawing) : null;
      if (!p || p.empty) return say('Draw a digit first, then say which it is.');
      if (items.length >= limit) return say(`My digits is full (${limit} drawings): remove some before adding more.`);
      drawing.strokes = drawing.strokes.map(simplify);
      const next = items.concat([{ id: newId(), label, strokes: drawing }]);
      if (JSON.stringify(next).length > MAX_SEND_CHARS) {
        return say('My digits is full: its drawings are as much as one Teach can send. Remove some before adding more.');
      }
      const problem = keep(next);
      if (problem) return say(`Not saved: ${problem}.`);
      document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape' }));   // the canvas clears (sketch.js)
      const n = count(label);
      return say(`Saved as ${article(label)} (${n === 1 ? 'your first' : `${n} of yours`}; ${items.length} in My digits).`);
    }
    // A message for the buttons' line (where: 'buttons') or the panel's ('panel').
    function say(text, where = 'buttons') { tell('message', { text, where }); return text; }
    function remove(id) { keep(items.filter(it => it.id !== id)); }
    function clearAll() { const n = items.length; keep([]); say(`Removed all ${n} drawings.`, 'panel'); }
    function restore(result) {
      if (result.error) return say(result.error, 'panel');
      const list = Array.isArray(result.drawings) ? result.drawings : [];
      if (list.length > limit) return say(`Not restored: ${list.length} drawings, more than My digits keeps (${limit}).`, 'panel');
      const before = items.length;
      const next = list.map(d => ({ id: newId(), label: +d.label, strokes: d.strokes })).filter(valid);
      if (JSON.stringify(next).length > MAX_SEND_CHARS) {
        return say('Not restored: these drawings are more than one Teach can send; split the file.', 'panel');
      }
      const problem = keep(next);
      if (problem) return say(`Not restored: ${problem}.`, 'panel');
      return say(`Restored ${next.length} drawings into My digits` + (before ? ` (in place of the ${before} there were).` : '.'), 'panel');
    }
    read();
    window.addEventListener('storage', e => { if (e.key === STORE_KEY) { read(); tell('items', items); } });
    return {
      limit,
      get items() { return items; },
      on(fn) { listeners.push(fn); },
      current(value) { current = value; },
      add, remove, clearAll, restore, count, say,
      payload() { return items.map(it => ({ strokes: it.strokes, label: it.label })); },
    };
  }

  const digits = app.digits || (app.digits = makeStore(+props.limit || 500));
  if (!digits.keys) {   // the keys 0-9 while the drawing canvas has the focus (once per page)
    digits.keys = true;
    document.addEventListener('keydown', e => {
      const t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey || !/^[0-9]$/.test(e.key)) return;
      if (!t || !t.classList || !t.classList.contains('sketch-canvas')) return;
      e.preventDefault();
      digits.add(+e.key);
    });
  }

  if (props.part === 'buttons') buttons(); else panel();

  // ------------------------------------------------------------------ It's a ... (under the label)
  function buttons() {
    const row = app.el('div', { class: 'its-a' });
    row.appendChild(app.el('span', { class: 'its-a-title' }, "It's a"));
    for (let d = 0; d <= 9; d++) {
      const b = app.el('button', { type: 'button', class: 'its-a-btn', 'data-digit': String(d), 'aria-label': `It's a ${d}`,
        title: `Save this drawing in My digits as a ${d} (or press ${d} while drawing)` }, String(d));
      b.addEventListener('click', () => digits.add(d));
      row.appendChild(b);
    }
    const msg = app.el('div', { class: 'its-a-msg', role: 'status' });
    root.replaceChildren(row, msg);
    digits.on((type, m) => { if (type === 'message' && m.where === 'buttons') msg.textContent = m.text; });
  }

  // ------------------------------------------------------------------ the grid
  function panel() {
    const images = new Map();     // id -> the 28x28 image (Float64Array), or null
    let guessed = new Map(), guessNet = null, timer = null, armed = 0;
    const head = app.el('div', { class: 'md-head' });
    const total = app.el('span', { class: 'md-total' });
    const counts = app.el('span', { class: 'md-counts' });
    const clearBtn = app.el('button', { type: 'button', class: 'md-clear' }, 'Clear all');
    head.append(total, counts, clearBtn);
    const msg = app.el('div', { class: 'md-msg', role: 'status' });
    const grid = app.el('div', { class: 'md-grid' });
    root.replaceChildren(head, msg, grid);

    clearBtn.addEventListener('click', () => {
      if (!digits.items.length) return;
      if (Date.now() - armed < 4000) { armed = 0; clearBtn.textContent = 'Clear all'; digits.clearAll(); return; }
      armed = Date.now();
      clearBtn.textContent = `Really remove all ${digits.items.length}?`;
      setTimeout(() => { if (armed && Date.now() - armed >= 4000) { armed = 0; clearBtn.textContent = 'Clear all'; } }, 4100);
    });

    function imageOf(it) {
      if (!images.has(it.id)) {
        let p = null;
        try { p = Net.prepareStrokes(it.strokes); } catch (e) { p = null; }
        images.set(it.id, p && !p.empty ? p.image : null);
      }
      return images.get(it.id);
    }
    function paint(cv, image) {
      const ctx = cv.getContext('2d'), img = ctx.createImageData(28, 28);
      for (let i = 0; i < 784; i++) {
        const v = image ? Math.round(Math.min(Math.max(image[i], 0), 1) * 255) : 0;
        img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
    }
    function tile(it) {
      const fig = app.el('figure', { class: 'md-tile', 'data-id': it.id, 'data-label': String(it.label) });
      const cv = app.mapCanvas(28, 28, 2, { class: 'md-img', 'aria-label': `your ${it.label}` });
      paint(cv, imageOf(it));
      const cap = app.el('figcaption', {});
      cap.append(app.el('b', {}, String(it.label)), app.el('span', { class: 'md-guess' }, ''));
      const rm = app.el('button', { type: 'button', class: 'md-remove', 'aria-label': `Remove this ${it.label}`, title: 'Remove' }, '\u00d7');
      rm.addEventListener('click', () => digits.remove(it.id));
      fig.append(cv, cap, rm);
      return fig;
    }
    function render() {
      const items = digits.items;
      root.dataset.count = String(items.length);
      total.textContent = `${items.length} of ${digits.limit} drawings`;
      counts.textContent = Array.from({ length: 10 }, (_, d) => [d, digits.count(d)]).filter(([, n]) => n)
        .map(([d, n]) => `${d}: ${n}`).join('   ');   // per digit, those you have
      clearBtn.disabled = !items.length;
      const live = new Set(items.map(it => it.id));
      for (const id of [...images.keys()]) if (!live.has(id)) images.delete(id);
      if (!items.length) {
        grid.replaceChildren(app.el('p', { class: 'md-empty' }, "No drawings yet: draw a digit, then press It's a ... (or its key)."));
        return;
      }
      grid.replaceChildren(...items.map(tile));
      guessNet = null;
      guess();
    }
    // What the chosen model says of each drawing, a slice at a time (the page stays responsive).
    function guess() {
      clearTimeout(timer);
      const net = app.net;
      if (net !== guessNet) { guessed = new Map(); guessNet = net; }
      const tiles = [...grid.querySelectorAll('.md-tile')];
      let i = 0;
      const step = () => {
        if (app.net !== net) return;
        for (const end = Math.min(tiles.length, i + 25); i < end; i++) show(tiles[i], net);
        if (i < tiles.length) timer = setTimeout(step, 0);
      };
      step();
    }
    function show(fig, net) {
      const id = fig.dataset.id, span = fig.querySelector('.md-guess');
      if (!net) { fig.dataset.guess = ''; span.textContent = ''; return; }
      if (!guessed.has(id)) {
        const image = images.get(id);
        let digit = null;
        if (image) {
          try { const p = Net.forward(net, image).probs; digit = p.indexOf(Math.max(...p)); } catch (e) { digit = null; }
        }
        guessed.set(id, digit);
      }
      const digit = guessed.get(id);
      fig.dataset.guess = digit === null ? '' : String(digit);
      fig.classList.toggle('md-wrong', digit !== null && String(digit) !== fig.dataset.label);
      span.textContent = digit === null ? '' : ` model: ${digit}`;
    }
    digits.on((type, m) => {
      if (type === 'items') render();
      else if (type === 'message' && m.where === 'panel') msg.textContent = m.text;
    });
    setInterval(() => { if (app.net !== guessNet) guess(); }, 700);   // another model chosen: read again
    render();
  }
})();
