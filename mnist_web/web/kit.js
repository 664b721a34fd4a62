// The app's front-end toolkit and the one object its components share: window.MnistApp.
// Loaded once per page: every gr.HTML component that uses it names this file in its `head`
// (mnist_web/assets.py KIT_HEAD), and Gradio puts an inline script in the document only once (the same
// text is not added twice), before the first component's js_on_load runs. Plain JavaScript, no build.
//
// Shared state (written only where said; everyone else reads):
//   net       the page's own network (MnistNet.loadNet), or null: the server answers   [canvas, sketch.js]
//   key       the registry key of `net`                                                 [canvas]
//   model     the chosen model's key, whichever side computes                           [canvas]
//   pending   a key whose weights are on their way, else null                           [canvas]
//   failures  how often the page's computation threw                                    [canvas]
//   live      where the live label comes from: 'server' | 'loading' | 'page'            [canvas]
//   last      the page's latest prediction (MnistNet.predict's result), or null         [live_event.js]
//   showWhy   whether "Show why" is on: pen-up asks for an explanation                 [show_why.js]
//             (computed in the page by web/explain.js, window.MnistExplain, when it can)
//   network   the network view's counters for tests and benchmarks:
//             {updates, renderMs, shown, selected, visible, select(stage, channel)}     [network.js]
// Events, MnistApp.on(type, fn) / MnistApp.emit(type, detail):
//   'choose'    key          a model was picked or taken: the canvas loads its weights   [choose_model.js]
//   'result'    prediction   the page computed a label: the network view redraws         [live_event.js]
//   'fallback'  -            the page's computation threw: the server answers from now   [live_event.js]
//   'whyFallback' -          the page could not explain: the canvas asks the server     [explain_event.js]
//   'settle'    {value, model}  the drawing settled (pen up, undo, clear) while the server answers:
//                            the network view asks the server for the maps              [sketch.js]
// Toolkit: el (one DOM element), mapCanvas (a pixel-crisp canvas), the colour maps (signedColour,
// heatColour, paintMap) and the prediction view (labelValue, predictionHtml: the twins of
// mnist_web/views.py label_value and prediction_html).
(() => {
  if (window.MnistApp) return;

  const EMPTY_MESSAGE = 'Draw a digit', NOT_A_DIGIT = 'Not a digit?';   // mnist_web/views.py
  const FIELD = 28;
  const events = new EventTarget();

  // ------------------------------------------------------------------ DOM
  // <tag attrs...>text</tag>
  function el(tag, attrs = {}, text = '') {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  }

  // A w x h canvas shown at `scale` CSS px per cell (the CSS keeps it pixel-crisp).
  function mapCanvas(w, h, scale, attrs = {}) {
    const c = el('canvas', { width: w, height: h, ...attrs });
    c.style.width = `${w * scale}px`; c.style.height = `${h * scale}px`;
    return c;
  }

  // ------------------------------------------------------------------ colour maps (RGBA into px at p)
  // t in [-1, 1]: blue (negative) / black (zero) / orange (positive); weights and signed activations.
  function signedColour(px, p, t) {
    const a = Math.min(1, Math.abs(t));
    if (t >= 0) { px[p] = 255 * a; px[p + 1] = 150 * a; px[p + 2] = 0; } else { px[p] = 0; px[p + 1] = 120 * a; px[p + 2] = 255 * a; }
    px[p + 3] = 255;
  }

  // t in [0, 1]: black -> red -> yellow -> white; activations after a ReLU.
  function heatColour(px, p, t) {
    const a = Math.min(1, Math.max(0, t));
    px[p] = 255 * Math.min(1, 2 * a); px[p + 1] = 255 * Math.min(1, Math.max(0, 2 * a - 0.8)); px[p + 2] = 255 * Math.max(0, 3 * a - 2);
    px[p + 3] = 255;
  }

  // n values data[offset ...] onto the canvas, row by row: heat by value / hi when lo == 0 (all >= 0),
  // signed by the largest |value| when lo < 0. Pixels past n stay transparent (the canvas's CSS is black).
  function paintMap(cv, data, offset, n, lo, hi) {
    const ctx = cv.getContext('2d'), img = ctx.createImageData(cv.width, cv.height), px = img.data;
    const signed = lo < 0, span = signed ? Math.max(-lo, hi) : hi, colour = signed ? signedColour : heatColour;
    for (let i = 0; i < n; i++) colour(px, 4 * i, span > 0 ? data[offset + i] / span : 0);
    ctx.putImageData(img, 0, 0);
  }

  // ------------------------------------------------------------------ the prediction view (views.py)
  const esc = s => String(s).replace(/[&<>"']/g, ch => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#x27;' }[ch]));
  const pct = (p, digits) => (p * 100).toFixed(digits) + '%';
  const article = d => (d === 8 ? `an ${d}` : `a ${d}`);

  // The gr.Label value as the front end holds it: headline, and the 10 confidences, highest first (the
  // best guess small under "Not a digit?"), and the "not a digit" verdict and score as the server sends them.
  function labelValue(r) {
    if (r.empty) return { label: EMPTY_MESSAGE };
    const confidences = r.probs.map((p, d) => ({ label: String(d), confidence: p }))
      .sort((a, b) => b.confidence - a.confidence);
    const label = r.notADigit ? NOT_A_DIGIT : r.unsure ? `${r.digit}?` : String(r.digit);
    return { label, confidences, not_a_digit: !!r.notADigit, novelty: r.novelty ?? null };
  }

  let pngCanvas = null;
  function pngDataUri(image) {
    pngCanvas = pngCanvas || Object.assign(document.createElement('canvas'), { width: FIELD, height: FIELD });
    const ctx = pngCanvas.getContext('2d'), img = ctx.createImageData(FIELD, FIELD);
    for (let i = 0; i < FIELD * FIELD; i++) {
      const v = Math.floor(Math.min(Math.max(image[i] * 255 + 0.5, 0), 255));
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return pngCanvas.toDataURL('image/png');
  }

  function predictionHtml(r, modelName) {
    let headline, bars, view;
    if (r.empty) {
      headline = `<b>${EMPTY_MESSAGE}</b> <span class='muted'>(${esc(r.reason)})</span>`;
      bars = ''; view = "<div class='mnist-view mnist-blank'></div>";
    } else {
      headline = r.notADigit
        ? `<b>${NOT_A_DIGIT}</b> <span class='muted'>best guess: ${article(r.digit)} (${pct(r.confidence, 0)})</span>`
        : r.unsure ? `<b>Not sure</b>: maybe ${article(r.digit)} (${pct(r.confidence, 0)})`
          : `It's a <b>${r.digit}</b> (${pct(r.confidence, 1)})`;
      const rows = r.probs.map((q, i) => `<div class='bar-row'><span>${i}</span><div class='bar'><div style='--width:${(q * 100).toFixed(1)}%'></div></div>`
        + `<span>${pct(q, 1)}</span></div>`).join('');
      bars = `<div class='bars'>${rows}</div>`;
      view = `<img class='mnist-view' alt='what the network sees' src='${pngDataUri(r.image)}'>`;
    }
    const model = modelName ? `<div class='muted'>model: ${esc(modelName)}</div>` : '';
    return `<div class='prediction' data-empty='${r.empty}' data-unsure='${!!r.unsure}' `
      + `data-not-a-digit='${!!r.notADigit}' data-source='page'>`
      + `<div class='headline'>${headline}</div><div class='pred-body'>${bars}`
      + `<figure>${view}<figcaption>what the network sees (28x28)</figcaption></figure></div>${model}</div>`;
  }

  window.MnistApp = {
    net: null, key: null, model: null, pending: null, failures: 0, live: 'server', last: null, network: null,
    showWhy: true,
    on(type, fn) { events.addEventListener(type, e => fn(e.detail)); },
    emit(type, detail) { events.dispatchEvent(new CustomEvent(type, { detail })); },
    el, mapCanvas, signedColour, heatColour, paintMap, labelValue, predictionHtml,
  };
})();
