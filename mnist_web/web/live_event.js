// The Draw canvas's `change` listener, run by Gradio in the page (fn=None: no request is made).
// Inputs: the strokes (JSON), the current label and view; outputs: the new label and view. Without
// the page's network (weights not loaded yet, refused, or a failed computation) it leaves both as they
// are and the server's answer (/classify_strokes, the canvas's `input` event) fills them instead.
(value, label, view) => {
  const live = window.MnistLive, net = live && live.net;
  if (!net || !window.MnistNet) return [label, view];
  try {
    const drawing = value ? JSON.parse(value) : { width: 320, height: 320, brush: 22, strokes: [] };
    const r = window.MnistNet.predict(net, drawing);
    live.last = r;                         // for the network view and the tests
    if (live.onResult) live.onResult(r);   // the network view: draws in the next animation frame
    return [window.MnistNet.labelValue(r), window.MnistNet.predictionHtml(r, net.description)];
  } catch (err) {
    console.warn('MNIST: the page could not compute the label; the server answers instead:', err.message);
    live.fallback();
    return [label, view];
  }
}
