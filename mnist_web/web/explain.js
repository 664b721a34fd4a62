// MnistExplain: "Show why" computed in the page, the twin of the server's /explain_strokes (plain
// JavaScript, no build, nothing loaded from elsewhere). Three parts, each the twin of Python:
//   occlusion(net, image, target)  <->  mnist_core/insight.py saliency(method="occlusion"): the same
//       squares (OCCLUSION_PATCH every OCCLUSION_STRIDE px), the drop of log p(target) when each square
//       touching ink is blacked out, averaged per pixel; run by the page's own network (web/mnistnet.js;
//       the layers before the average pool recomputed only where the square reaches) in slices of SLICE_MS
//       between which the page handles the pen (never a long task).
//   the look-alike index (GET mnist/lookalikes?key=K, mnist_web/lookalike_routes.py): the server's own
//       int8 codes of the training digits' pooled features, searched by the same cosine similarity
//       (insight.py FeatureIndex); the digits' pixels from GET mnist/digits?ids=... (kept here per id:
//       no request when all 8 are known).
//   heatHtml / lookalikesHtml  <->  mnist_web/insight_views.py heat_html(overlay(...)), lookalikes_html.
// The index is fetched only while "Show why" is on (sketch.js and show_why.js call load(key); while the
// server builds it, 202, the page asks again after Retry-After); until it is there (or after an error,
// or with no MNIST on the server) ready(key) is false and the canvas asks the server instead, as
// before. Defined once per page as window.MnistExplain (a head
// script of the Draw tab's canvas, mnist_web/assets.py SKETCH_HEAD); the canvas's `submit` listener
// (web/explain_event.js) calls explainDrawing(); `last` and `stats` are for the tests and benchmarks.
(() => {
  if (window.MnistExplain) return;

  const FIELD = 28, PATCH = 4, STRIDE = 2, K = 8;          // insight.py OCCLUSION_PATCH, _STRIDE, LOOKALIKES
  const SCALE = 8, DIGIT_GRAY = 0.6;                        // insight_views.py SCALE, DIGIT_GRAY
  const RAMP_AT = [0, 0.25, 0.5, 0.75, 1];
  const RAMP = [[120, 0, 0], [200, 20, 10], [240, 90, 0], [255, 170, 0], [255, 240, 80]];
  const INDEX_URL = 'mnist/lookalikes', DIGITS_URL = 'mnist/digits', MAGIC = 'MNLA1\0\0\0';
  const SLICE_MS = 6;            // longest stretch of occlusion work before the page gets the thread back
  const RETRY_FAILED_MS = 60_000;

  const indexes = new Map();     // key -> {state: 'loading' | 'ready' | 'building' | 'failed', index, retryAt}
  const digits = new Map();      // training index -> PNG data URI
  let seq = 0;                   // the newest explanation; an older one stops at its next slice
  const stats = { page: 0, stale: 0, digitRequests: 0, indexLoads: 0, lastMs: 0 };

  const yieldToPage = () => new Promise(resolve => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => resolve();
    ch.port2.postMessage(null);
  });

  // ------------------------------------------------------------------ evidence (insight.py _occlusion)
  function squareStarts(patch, stride) {
    const starts = [];
    for (let s = 0; s <= FIELD - patch; s += stride) starts.push(s);
    if (starts[starts.length - 1] !== FIELD - patch) starts.push(FIELD - patch);
    return starts;
  }

  // Output rows y0..y1-1, columns x0..x1-1 of layer L (a valid convolution, then its ReLU) into out:
  // MnistNet's own convolution of that rectangle (so the values are the same to the last bit).
  function convRect(out, x, cin, h, w, L, y0, y1, x0, x1) {
    window.MnistNet.convInto(out, x, cin, h, w, L, y0, y1, x0, x1);
    if (!L.relu) return;
    const oh = h - L.k + 1, ow = w - L.k + 1;
    for (let o = 0; o < L.cout; o++) {
      const plane = o * oh * ow;
      for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) if (out[plane + y * ow + xx] < 0) out[plane + y * ow + xx] = 0;
    }
  }

  // 2x2 max-pool of rows y0..y1-1, columns x0..x1-1 (pooled coordinates) of x [c][h][w] into out, as MnistNet.
  function poolRect(out, x, c, h, w, y0, y1, x0, x1) {
    const oh = h >> 1, ow = w >> 1;
    for (let ch = 0; ch < c; ch++) for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) {
      const s = ch * h * w + 2 * y * w + 2 * xx;
      out[(ch * oh + y) * ow + xx] = Math.max(x[s], x[s + 1], x[s + w], x[s + w + 1]);
    }
  }

  // log p(target) of the image with one square blacked out. Up to the average pool each layer sees only a
  // window change (a k x k kernel spreads it by k - 1, a max-pool halves it): only that window is
  // recomputed, from the unoccluded image's maps (base); the rest runs as usual (MnistNet.forward).
  function occludedLogProb(net, base, sy, sx, patch, target) {
    let [y0, y1, x0, x1] = [sy, sy + patch, sx, sx + patch];
    let x = base.maps[0].slice(), h = FIELD, w = FIELD, c = 1;
    const black = (0 - net.mean) / net.std;
    for (let y = y0; y < y1; y++) x.fill(black, y * FIELD + x0, y * FIELD + x1);
    for (let i = 0; i < base.prefix; i++) {
      const L = net.layers[i], oh = h - L.k + 1, ow = w - L.k + 1, pre = base.pre[i].slice();
      [y0, y1, x0, x1] = [Math.max(0, y0 - L.k + 1), Math.min(oh, y1), Math.max(0, x0 - L.k + 1), Math.min(ow, x1)];
      convRect(pre, x, c, h, w, L, y0, y1, x0, x1);
      x = pre; h = oh; w = ow; c = L.cout;
      if (L.pool === 'max2') {
        const out = base.maps[i + 1].slice();
        [y0, y1, x0, x1] = [y0 >> 1, (y1 + 1) >> 1, x0 >> 1, (x1 + 1) >> 1];
        poolRect(out, pre, c, h, w, y0, y1, x0, x1);
        x = out; h >>= 1; w >>= 1;
      }
    }
    return window.MnistNet.forward(net, null, { layer: base.prefix, x, c, h, w }).logprobs[target];
  }

  // The unoccluded image's maps up to the first average pool: maps[0] its normalized pixels, maps[i + 1]
  // layer i's output (after its max-pool), pre[i] before that pool.
  function prefixMaps(net, image) {
    const maps = [Float64Array.from(image, v => (v - net.mean) / net.std)], pre = [];
    let h = FIELD, w = FIELD, c = 1, prefix = 0;
    for (const L of net.layers) {
      if (L.pool && L.pool !== 'max2') break;
      const oh = h - L.k + 1, ow = w - L.k + 1, out = new Float64Array(L.cout * oh * ow);
      convRect(out, maps[maps.length - 1], c, h, w, L, 0, oh, 0, ow);
      pre.push(out); h = oh; w = ow; c = L.cout; prefix += 1;
      if (L.pool === 'max2') {
        const pooled = new Float64Array(c * (h >> 1) * (w >> 1));
        poolRect(pooled, out, c, h, w, 0, h >> 1, 0, w >> 1);
        maps.push(pooled); h >>= 1; w >>= 1;
      } else maps.push(out);
    }
    return { maps, pre, prefix };
  }

  // -> Float64Array(784) of mean drops, or null when a newer explanation started meanwhile.
  async function occlusion(net, image, target, isCurrent = () => true, patch = PATCH, stride = STRIDE) {
    const starts = squareStarts(patch, stride), base = prefixMaps(net, image);
    const logp = window.MnistNet.forward(net, image).logprobs[target];
    const total = new Float64Array(FIELD * FIELD), count = new Float64Array(FIELD * FIELD);
    let t0 = performance.now();
    for (const sy of starts) {
      for (const sx of starts) {
        let ink = false;
        for (let y = sy; y < sy + patch && !ink; y++) for (let x = sx; x < sx + patch; x++) if (image[y * FIELD + x] > 0) { ink = true; break; }
        const drop = ink ? logp - occludedLogProb(net, base, sy, sx, patch, target) : 0;
        for (let y = sy; y < sy + patch; y++) {
          for (let x = sx; x < sx + patch; x++) { total[y * FIELD + x] += drop; count[y * FIELD + x] += 1; }
        }
        if (performance.now() - t0 > SLICE_MS) {
          await yieldToPage();
          if (!isCurrent()) return null;
          t0 = performance.now();
        }
      }
    }
    for (let i = 0; i < total.length; i++) total[i] /= count[i];
    return total;
  }

  // ------------------------------------------------------------------ pictures (insight_views.py)
  function percentile(values, q) {               // numpy's default (linear)
    const v = Float64Array.from(values).sort(), at = q * (v.length - 1), lo = Math.floor(at), hi = Math.ceil(at);
    return v[lo] + (v[hi] - v[lo]) * (at - lo);
  }

  function ramp(h, c) {
    for (let i = 1; i < RAMP_AT.length; i++) {
      if (h <= RAMP_AT[i]) return RAMP[i - 1][c] + (RAMP[i][c] - RAMP[i - 1][c]) * (h - RAMP_AT[i - 1]) / (RAMP_AT[i] - RAMP_AT[i - 1]);
    }
    return RAMP[RAMP.length - 1][c];
  }

  let heatCanvas = null;
  // overlay(image, attribution) as the <img> of heat_html: the digit in gray, the positive evidence blended over it.
  function heatHtml(image, map) {
    const pos = Array.from(map, v => Math.max(v, 0)), inked = pos.filter(v => v > 0);
    const top = inked.length ? percentile(inked, 0.95) : 0, side = FIELD * SCALE;
    heatCanvas = heatCanvas || Object.assign(document.createElement('canvas'), { width: side, height: side });
    const ctx = heatCanvas.getContext('2d'), img = ctx.createImageData(side, side), px = img.data;
    for (let i = 0; i < FIELD * FIELD; i++) {
      const h = top > 0 ? Math.min(Math.max(pos[i] / top, 0), 1) : pos[i], alpha = Math.sqrt(h) * 0.9;
      const gray = image[i] * DIGIT_GRAY * 255;
      const rgb = [0, 1, 2].map(c => Math.floor(Math.min(Math.max(gray * (1 - alpha) + ramp(h, c) * alpha + 0.5, 0), 255)));
      const y0 = Math.floor(i / FIELD) * SCALE, x0 = (i % FIELD) * SCALE;
      for (let y = y0; y < y0 + SCALE; y++) {
        for (let x = x0; x < x0 + SCALE; x++) {
          const p = 4 * (y * side + x);
          px[p] = rgb[0]; px[p + 1] = rgb[1]; px[p + 2] = rgb[2]; px[p + 3] = 255;
        }
      }
    }
    ctx.putImageData(img, 0, 0);
    return `<img class='heat' data-source='page' alt='evidence for the top class' width='${side}' height='${side}' src='${heatCanvas.toDataURL('image/png')}'>`;
  }

  const EMPTY_HEAT = "<div class='heat heat-empty'></div>";

  function lookalikesHtml(found) {
    const figs = found.map(x => `<figure data-label='${x.label}' data-index='${x.index}'><img alt='a ${x.label}' src='${digits.get(x.index)}'>`
      + `<figcaption>${x.label} (${x.similarity.toFixed(2)})</figcaption></figure>`).join('');
    const counts = new Array(10).fill(0);
    for (const x of found) counts[x.label] += 1;
    let top = 0;
    for (let d = 1; d < 10; d++) if (counts[d] > counts[top]) top = d;
    const note = `${counts[top]} of the ${found.length} nearest training digits are ${top}s.`;
    return `<div class='lookalikes' data-source='page' data-count='${found.length}'><div class='lookalike-strip'>${figs}</div>`
      + `<div class='insight-note'>${note}</div></div>`;
  }

  // ------------------------------------------------------------------ the look-alike index
  // The binary body of mnist_web/lookalike_routes.py -> {n, d, rows (unit-length codes * scale), labels, a, b}.
  function parseIndex(buf) {
    const head = new TextDecoder().decode(new Uint8Array(buf, 0, 8)), dv = new DataView(buf);
    if (head !== MAGIC || buf.byteLength < 16) throw new Error('not a look-alike index');
    const n = dv.getUint32(8, true), d = dv.getUint32(12, true), at = 16 + 12 * d;
    if (d < 1 || d > 64 || buf.byteLength !== at + n + n * d) throw new Error('look-alike index of the wrong size');
    const f32 = k => Float32Array.from({ length: d }, (_, i) => dv.getFloat32(16 + 4 * (k * d + i), true));
    const scale = f32(0), a = f32(1), b = f32(2);
    const labels = new Uint8Array(buf, at, n), codes = new Int8Array(buf, at + n, n * d), rows = new Float32Array(n * d);
    for (let r = 0; r < n; r++) {                  // insight.py FeatureIndex: unit rows of codes * scale (float32)
      let norm = 0;
      for (let i = 0; i < d; i++) { const v = Math.fround(codes[r * d + i] * scale[i]); rows[r * d + i] = v; norm += v * v; }
      norm = Math.max(Math.sqrt(norm), 1e-12);
      for (let i = 0; i < d; i++) rows[r * d + i] /= norm;
    }
    return { n, d, rows, labels, a, b };
  }

  // The page's pooled features (the folded network's last-but-one layer) -> the K nearest, best first
  // (ties: the lower index), by cosine similarity with the server's pooled features a * f + b.
  function nearest(index, pooled, k = K) {
    const { n, d, rows, labels, a, b } = index;
    const q = Array.from({ length: d }, (_, i) => a[i] * pooled[i] + b[i]);
    const qn = Math.max(Math.hypot(...q), 1e-12);
    for (let i = 0; i < d; i++) q[i] /= qn;
    const best = [];                                // [similarity, index], sorted best first
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += q[i] * rows[r * d + i];
      if (best.length === k && s <= best[k - 1][0]) continue;
      let j = best.length < k ? best.length : k - 1;
      while (j > 0 && best[j - 1][0] < s) { best[j] = best[j - 1]; j--; }
      best[j] = [s, r];
    }
    return best.map(([similarity, i]) => ({ index: i, label: labels[i], similarity }));
  }

  // window.MNIST_SERVER_WHY (set before the page loads): the server explains, as before (benchmarks/browser_latency.py).
  // After the page's explanation threw once (disable()), the server explains for the rest of the visit.
  let disabled = false;
  function disable() { disabled = true; }
  function ready(key) {
    const e = indexes.get(key);
    return !window.MNIST_SERVER_WHY && !disabled && !!(e && e.state === 'ready');
  }
  function state(key) { const e = indexes.get(key); return e ? e.state : 'none'; }
  function indexFor(key) { return ready(key) ? indexes.get(key).index : null; }

  // Fetch the model's index unless it is here, on its way, or refused a moment ago (202: being built).
  async function load(key) {
    const e = indexes.get(key);
    if (!key || (e && (e.state === 'ready' || e.state === 'loading' || performance.now() < e.retryAt))) return;
    indexes.set(key, { state: 'loading', retryAt: 0 });
    try {
      const url = new URL(INDEX_URL, document.baseURI);
      url.searchParams.set('key', key);
      const res = await fetch(url, { credentials: 'same-origin' });
      if (res.status === 202) {
        const wait = 1000 * (Number(res.headers.get('Retry-After')) || 2);
        indexes.set(key, { state: 'building', retryAt: performance.now() + wait });
        setTimeout(() => { if (window.MnistApp.showWhy !== false && window.MnistApp.key === key) load(key); }, wait);
        return;
      }
      if (!res.ok) throw new Error(`look-alike index: HTTP ${res.status}`);
      const index = parseIndex(await res.arrayBuffer());
      stats.indexLoads += 1;
      indexes.set(key, { state: 'ready', index, retryAt: 0 });
    } catch (err) {
      indexes.set(key, { state: 'failed', retryAt: performance.now() + RETRY_FAILED_MS });
      console.warn('MNIST: the page finds no look-alikes itself (the server explains instead):', err.message);
    }
  }

  let digitCanvas = null;
  function digitUri(bytes) {
    digitCanvas = digitCanvas || Object.assign(document.createElement('canvas'), { width: FIELD, height: FIELD });
    const ctx = digitCanvas.getContext('2d'), img = ctx.createImageData(FIELD, FIELD);
    for (let i = 0; i < FIELD * FIELD; i++) { img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = bytes[i]; img.data[4 * i + 3] = 255; }
    ctx.putImageData(img, 0, 0);
    return digitCanvas.toDataURL('image/png');
  }

  // The pixels of the training digits not yet here, in one request (none when all are here).
  async function fetchDigits(ids) {
    const missing = [...new Set(ids)].filter(i => !digits.has(i));
    if (!missing.length) return;
    const url = new URL(DIGITS_URL, document.baseURI);
    url.searchParams.set('ids', missing.join(','));
    stats.digitRequests += 1;
    const res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(`digits: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length !== missing.length * FIELD * FIELD) throw new Error('digits of the wrong size');
    missing.forEach((id, j) => digits.set(id, digitUri(bytes.subarray(j * FIELD * FIELD, (j + 1) * FIELD * FIELD))));
  }

  // ------------------------------------------------------------------ one settled drawing
  // The strokes (JSON) -> {heat, caption, look} as /explain_strokes returns them; null when a newer
  // explanation started meanwhile. Throws when the page cannot (the caller asks the server).
  async function explainDrawing(net, key, value) {
    const mine = ++seq, isCurrent = () => mine === seq, t0 = performance.now();
    const drawing = value ? JSON.parse(value) : { width: 320, height: 320, brush: 22, strokes: [] };
    const r = window.MnistNet.predict(net, drawing);
    if (r.empty) return { heat: EMPTY_HEAT, caption: `Nothing to explain (${r.reason})`, look: "<div class='lookalikes' data-count='0'></div>" };
    const entry = indexes.get(key);
    if (!entry || entry.state !== 'ready') throw new Error('no look-alike index for this model');
    const found = nearest(entry.index, r.stages[r.stages.length - 2].data);
    const pixels = fetchDigits(found.map(x => x.index));
    const map = await occlusion(net, r.image, r.digit, isCurrent);
    await pixels;
    if (!map || !isCurrent()) { stats.stale += 1; return null; }
    const p = r.probs[r.digit];
    const out = {
      heat: heatHtml(r.image, map),
      caption: `Evidence for ${r.digit} (${(p * 100).toFixed(0)}%): brighter = pushes harder towards ${r.digit}`,
      look: lookalikesHtml(found),
    };
    stats.page += 1; stats.lastMs = performance.now() - t0;
    window.MnistExplain.last = { map: Array.from(map), target: r.digit, ids: found.map(x => x.index),
                                 similarities: found.map(x => x.similarity), ms: stats.lastMs };
    return out;
  }

  function cancel() { seq += 1; }

  window.MnistExplain = { occlusion, nearest, parseIndex, load, ready, disable, state, indexFor, explainDrawing, cancel, heatHtml, stats, last: null };
})();
