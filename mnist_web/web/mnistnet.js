// MnistNet: the page's own copy of the server's live answer, in plain JavaScript (no build, no
// WebAssembly, nothing loaded from elsewhere). Two pure parts, each the twin of a Python function:
//   prepareStrokes(drawing)  <->  mnist_core/raster.py strokes_to_mnist (the same arithmetic, float64)
//   forward(net, image)      <->  mnist_core/fold.py forward (BatchNorm folded into the convolutions)
//   novelty(nov, stages)     <->  mnist_core/novelty.py score of stage_features ("Not a digit?")
// The network's layers (channels, kernel, ReLU, pool) come with its weights (GET mnist/weights, built from
// mnist_core/arch.py): this file holds no layer table; loadNet checks that they chain from 28x28 to 10.
// What the page shows with the result (the label and the prediction view) is in the toolkit, web/kit.js.
// Defined once per page as window.MnistNet (a head script of the Draw tab's canvas, mnist_web/assets.py
// NET_HEAD); the canvas's `change` listener (web/live_event.js) and the tests use it.
(() => {
  if (window.MnistNet) return;

  const BOX = 20, FIELD = 28, CENTER = 14.0;               // mnist_core/preprocess.py
  const MIN_EXTENT = 0.10, MIN_EXTENT_PX = 3, DEFAULT_SIDE = 320;
  const FORMAT = 'mnist-folded-1', CLASSES = 10;

  // raster.py nearest(): half up, ties within TIE included (sums may differ from numpy's in the last bit).
  const TIE = 1e-7;
  const nearest = x => Math.floor(x + 0.5 + TIE);
  const clip = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  // ------------------------------------------------------------------ strokes -> 28x28 (raster.py)
  function segments(strokes) {
    const segs = [];
    for (const s of strokes) {
      if (!s.length) continue;
      if (s.length === 1) { segs.push([s[0][0], s[0][1], s[0][0], s[0][1]]); continue; }
      for (let i = 1; i < s.length; i++) segs.push([s[i - 1][0], s[i - 1][1], s[i][0], s[i][1]]);
    }
    return segs;
  }

  // Liang-Barsky, as raster.py clip_segments: the segment cut to the rectangle, or null.
  function clipSegment([ax, ay, bx, by], rx0, ry0, rx1, ry1) {
    const dx = bx - ax, dy = by - ay;
    let t0 = 0, t1 = 1;
    for (const [p, q] of [[-dx, ax - rx0], [dx, rx1 - ax], [-dy, ay - ry0], [dy, ry1 - ay]]) {
      if (p === 0) { if (q < 0) return null; continue; }
      const t = q / p;
      if (p < 0) t0 = Math.max(t0, t); else t1 = Math.min(t1, t);
    }
    if (!(t0 <= t1)) return null;
    return [ax + t0 * dx, ay + t0 * dy, ax + t1 * dx, ay + t1 * dy];
  }

  function prepareStrokes(d) {
    const W = d.width, H = d.height, r = d.brush / 2;
    const strokes = (d.strokes || []).filter(s => s.length);
    if (!strokes.length) return { empty: true, reason: 'nothing drawn', image: null };
    const segs = segments(strokes);
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const seg of segs) {
      const c = clipSegment(seg, -r, -r, W + r, H + r);
      if (!c) continue;
      const [ax, ay, bx, by] = c;
      const lx = Math.max(Math.min(ax, bx) - r, 0), hx = Math.min(Math.max(ax, bx) + r, W);
      const ly = Math.max(Math.min(ay, by) - r, 0), hy = Math.min(Math.max(ay, by) + r, H);
      if (hx > lx && hy > ly) { x0 = Math.min(x0, lx); y0 = Math.min(y0, ly); x1 = Math.max(x1, hx); y1 = Math.max(y1, hy); }
    }
    if (x0 === Infinity) return { empty: true, reason: 'no ink found', image: null };
    const bw = x1 - x0, bh = y1 - y0, longer = Math.max(bw, bh), side = Math.max(W, H);
    if (longer < Math.max(MIN_EXTENT * side, MIN_EXTENT_PX * Math.max(1, side / DEFAULT_SIDE))) {
      return { empty: true, reason: 'too small to be a digit', image: null };
    }
    const scale = BOX / longer;
    const nw = Math.max(1, nearest(bw * scale)), nh = Math.max(1, nearest(bh * scale));
    const small = new Float64Array(nw * nh);
    let peak = 0;
    for (let i = 0; i < nh; i++) {
      const Y = y0 + (i + 0.5) * (bh / nh);
      for (let j = 0; j < nw; j++) {
        const X = x0 + (j + 0.5) * (bw / nw);
        let best = Infinity;
        for (const [ax, ay, bx, by] of segs) {
          const dx = bx - ax, dy = by - ay, length2 = dx * dx + dy * dy;
          const px = X - ax, py = Y - ay;
          const t = length2 > 0 ? clip((px * dx + py * dy) / length2, 0, 1) : 0;
          const ex = px - t * dx, ey = py - t * dy, e2 = ex * ex + ey * ey;
          if (e2 < best) best = e2;
        }
        const inside = Math.min(Math.min(X, W - X), Math.min(Y, H - Y));
        const v = clip(0.5 + (r - Math.sqrt(best)) * scale, 0, 1) * clip(0.5 + inside * scale, 0, 1);
        small[i * nw + j] = v;
        if (v > peak) peak = v;
      }
    }
    if (!(peak > 0)) return { empty: true, reason: 'no ink found', image: null };
    let mass = 0, my = 0, mx = 0;
    for (let i = 0; i < nh; i++) {
      for (let j = 0; j < nw; j++) {
        const v = small[i * nw + j] / peak;
        small[i * nw + j] = v; mass += v; my += v * i; mx += v * j;
      }
    }
    const top = clip(nearest(CENTER - my / mass), 0, FIELD - nh);
    const left = clip(nearest(CENTER - mx / mass), 0, FIELD - nw);
    const image = new Float64Array(FIELD * FIELD);
    for (let i = 0; i < nh; i++) for (let j = 0; j < nw; j++) image[(top + i) * FIELD + left + j] = small[i * nw + j];
    return { empty: false, reason: '', image };
  }

  // ------------------------------------------------------------------ the network (fold.py)
  function decode(b64) {
    const bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return Float64Array.from(new Float32Array(bytes.buffer));
  }

  // The server's payload -> a network, or an Error when it does not hold together (never computes nonsense):
  // each layer's channels must be the one before's, its weights cin x cout x k x k, the maps must stay at
  // least 1x1 (a 2x2 max-pool on an even side, an average pool "avgN" over the whole NxN map) and end
  // as 10 logits.
  function loadNet(data) {
    const wrong = () => new Error('not a folded network of this architecture');
    if (!data || data.format !== FORMAT || !Array.isArray(data.layers) || !data.layers.length) throw wrong();
    let cin = 1, side = FIELD;
    const layers = data.layers.map(spec => {
      if (!spec || typeof spec !== 'object') throw wrong();
      const { name, cout, k, relu, pool } = spec;
      const w = decode(spec.weight), b = decode(spec.bias);
      side -= k - 1;
      const pooled = pool === 'max2' ? (side % 2 ? 0 : side / 2) : pool === `avg${side}` ? 1 : pool === '' ? side : 0;
      if (spec.cin !== cin || ![cout, k].every(Number.isInteger) || !(k >= 1 && side >= 1 && pooled >= 1)
          || typeof relu !== 'boolean' || w.length !== cout * cin * k * k || b.length !== cout || !w.every(Number.isFinite)) {
        throw new Error(`layer ${name} has the wrong shape`);
      }
      side = pooled; cin = cout;
      return { name, cin: spec.cin, cout, k, relu, pool, w, b };
    });
    if (cin !== CLASSES || side !== 1) throw wrong();
    if (!(data.std > 0) || !Number.isFinite(data.mean)) throw new Error('bad normalization');
    return { layers, mean: data.mean, std: data.std, key: data.key, description: data.description || '',
             unsureBelow: data.unsure_below ?? 0.6, novelty: loadNovelty(data.novelty, layers) };
  }

  // The "not a digit" stats (mnist_web/weights.py novelty_payload), or null when the model has none. The
  // features are the mean of each channel of each layer but the last (the layers the stats name); the
  // class means [10 x D] and the whitening's upper triangle, row by row, come as float32.
  function loadNovelty(data, layers) {
    if (data == null) return null;
    const names = layers.slice(0, -1).map(L => L.name), D = layers.slice(0, -1).reduce((n, L) => n + L.cout, 0);
    const means = decode(data.means), whiten = decode(data.whiten);
    if (!Array.isArray(data.layers) || data.layers.join() !== names.join() || data.features !== D
        || means.length !== CLASSES * D || whiten.length !== D * (D + 1) / 2 || !Number.isFinite(data.threshold)
        || !means.every(Number.isFinite) || !whiten.every(Number.isFinite)) {
      throw new Error('the "not a digit" stats do not fit this network');
    }
    return { D, means, whiten, threshold: data.threshold };
  }

  // forward()'s stages -> the novelty score: the Mahalanobis distance to the nearest class mean,
  // sqrt(min over c of |W (f - mean_c)|^2), f the mean of each channel of each stage but the last.
  function novelty(nov, stages) {
    const { D, means, whiten } = nov, f = new Float64Array(D), diff = new Float64Array(D);
    let n = 0;
    for (const s of stages.slice(0, -1)) {
      const size = s.h * s.w;
      for (let ch = 0; ch < s.channels; ch++) {
        let sum = 0;
        for (let i = 0; i < size; i++) sum += s.data[ch * size + i];
        f[n++] = sum / size;
      }
    }
    let best = Infinity;
    for (let c = 0; c < CLASSES; c++) {
      for (let j = 0; j < D; j++) diff[j] = f[j] - means[c * D + j];
      let d2 = 0, k = 0;
      for (let i = 0; i < D; i++) {
        let z = 0;
        for (let j = i; j < D; j++) z += whiten[k++] * diff[j];
        d2 += z * z;
      }
      if (d2 < best) best = d2;
    }
    return Math.sqrt(best);
  }

  // Valid convolution: x [cin][h][w] (flat) -> [cout][h-k+1][w-k+1] plus bias.
  function conv(x, cin, h, w, L) {
    const oh = h - L.k + 1, ow = w - L.k + 1, out = new Float64Array(L.cout * oh * ow);
    convInto(out, x, cin, h, w, L, 0, oh, 0, ow);
    return { x: out, h: oh, w: ow };
  }

  // The convolution's output rows y0..y1-1, columns x0..x1-1 only, into out [cout][h-k+1][w-k+1]: the
  // same sums in the same order as the whole map (web/explain.js recomputes an occluded patch's reach).
  function convInto(out, x, cin, h, w, L, y0, y1, x0, x1) {
    const { cout, k } = L, oh = h - k + 1, ow = w - k + 1;
    for (let o = 0; o < cout; o++) {
      const plane = o * oh * ow;
      for (let y = y0; y < y1; y++) out.fill(L.b[o], plane + y * ow + x0, plane + y * ow + x1);
      for (let c = 0; c < cin; c++) {
        const src = c * h * w;
        for (let dy = 0; dy < k; dy++) {
          for (let dx = 0; dx < k; dx++) {
            const wt = L.w[((o * cin + c) * k + dy) * k + dx];
            if (wt === 0) continue;
            for (let y = y0; y < y1; y++) {
              const row = src + (y + dy) * w + dx, dst = plane + y * ow;
              for (let xx = x0; xx < x1; xx++) out[dst + xx] += wt * x[row + xx];
            }
          }
        }
      }
    }
  }

  // 28x28 image in [0, 1] -> {logprobs, probs, stages: [{name, channels, h, w, data}]}, one per layer; a
  // pooled layer also keeps its maps before the pool as .pre = {h, w, data} (the network view shows conv6's).
  // start = {layer, x, c, h, w}: go on from the input x of that layer instead (the stages before it are
  // not in the result); web/explain.js computes the first layers of an occluded image itself.
  function forward(net, image, start = null) {
    let x, h = FIELD, w = FIELD, c = 1;
    if (start) ({ x, h, w, c } = start);
    else {
      x = new Float64Array(FIELD * FIELD);
      for (let i = 0; i < x.length; i++) x[i] = (image[i] - net.mean) / net.std;
    }
    const stages = [];
    let pre = null;
    for (const L of net.layers.slice(start ? start.layer : 0)) {
      ({ x, h, w } = conv(x, c, h, w, L));
      c = L.cout;
      if (L.relu) for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] = 0;
      if (L.pool) pre = { h, w, data: x };
      if (L.pool === 'max2') {
        const oh = h >> 1, ow = w >> 1, out = new Float64Array(c * oh * ow);
        for (let ch = 0; ch < c; ch++) for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) {
          const s = ch * h * w + 2 * y * w + 2 * xx;
          out[(ch * oh + y) * ow + xx] = Math.max(x[s], x[s + 1], x[s + w], x[s + w + 1]);
        }
        x = out; h = oh; w = ow;
      } else if (L.pool) {                   // avgN: the mean of each whole NxN map
        const out = new Float64Array(c);
        for (let ch = 0; ch < c; ch++) { let s = 0; for (let i = 0; i < h * w; i++) s += x[ch * h * w + i]; out[ch] = s / (h * w); }
        x = out; h = 1; w = 1;
      }
      stages.push(pre ? { name: L.name, channels: c, h, w, data: x, pre } : { name: L.name, channels: c, h, w, data: x });
      pre = null;
    }
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let z = 0;
    for (const v of x) z += Math.exp(v - m);
    const lse = m + Math.log(z);
    const logprobs = Array.from(x, v => v - lse);
    return { logprobs, probs: logprobs.map(Math.exp), stages };
  }

  // drawing -> the prediction the server would make (mnist_core/predict.py Prediction)
  function predict(net, drawing) {
    const p = prepareStrokes(drawing);
    if (p.empty) return { ...p, probs: null, digit: null, confidence: 0, unsure: false, novelty: null, notADigit: false };
    const f = forward(net, p.image);
    let digit = 0;
    for (let d = 1; d < CLASSES; d++) if (f.probs[d] > f.probs[digit]) digit = d;
    const confidence = f.probs[digit];
    const score = net.novelty ? novelty(net.novelty, f.stages) : null;
    return { ...p, probs: f.probs, logprobs: f.logprobs, stages: f.stages, digit, confidence,
             unsure: confidence < net.unsureBelow, novelty: score,
             notADigit: score !== null && score > net.novelty.threshold };
  }

  window.MnistNet = { nearest, prepareStrokes, loadNet, conv, convInto, forward, novelty, predict };
})();
