// The Draw canvas's `submit` listener, run by Gradio in the page (fn=None: no request is made): "Show
// why" for the settled drawing, computed by the page (web/explain.js) with its own network and the
// model's look-alike index. Inputs: the strokes (JSON) and the panel's current evidence, caption and
// look-alikes; outputs: the new ones. The canvas fires `submit` only when the page can explain
// (MnistExplain.ready); when it cannot after all (the computation throws) the panel stays as it is,
// 'whyFallback' makes the canvas ask the server (`release` -> /explain_strokes), and the server explains
// from then on. A newer drawing makes
// an older explanation stop early and leave the panel as it is.
async (value, heat, caption, look) => {
  const app = window.MnistApp, X = window.MnistExplain;
  try {
    if (!app || !app.net || !X) throw new Error('the page has no network');
    const out = await X.explainDrawing(app.net, app.key, value);
    return out ? [out.heat, out.caption, out.look] : [heat, caption, look];
  } catch (err) {
    console.warn('MNIST: the page could not explain the drawing; the server explains instead:', err.message);
    if (X) X.disable();             // from now on the server explains
    app.emit('whyFallback');
    return [heat, caption, look];
  }
}
