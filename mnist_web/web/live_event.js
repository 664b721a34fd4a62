// The Draw canvas's `change` listener, run by Gradio in the page (fn=None: no request is made).
// Inputs: the strokes (JSON), the current label and view; outputs: the new label and view. Without
// the page's network (weights not loaded yet, refused, or a failed computation) it leaves both as they
// are and the server's answer (/classify_strokes, the canvas's `input` event) fills them instead.
// Reads window.MnistApp.net (web/kit.js); writes its `last` and emits 'result' (the network view) or,
// when the computation throws, 'fallback' (the canvas hands over to the server).
(value, label, view) => {
  const app = window.MnistApp, net = app && app.net;
  if (!net || !window.MnistNet) return [label, view];
  try {
    const drawing = value ? JSON.parse(value) : { width: 320, height: 320, brush: 22, strokes: [] };
    const r = window.MnistNet.predict(net, drawing);
    app.last = r;                   // for the network view and the tests
    app.emit('result', r);          // the network view: draws in the next animation frame
    return [app.labelValue(r), app.predictionHtml(r, net.description)];
  } catch (err) {
    console.warn('MNIST: the page could not compute the label; the server answers instead:', err.message);
    app.emit('fallback');
    return [label, view];
  }
}
