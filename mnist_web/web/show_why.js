// The "Show why" checkbox changed: the canvas asks for an explanation at pen-up only while it is on
// (window.MnistApp.showWhy, read by web/sketch.js). Run by Gradio in the page (fn=None).
(on) => {
  if (window.MnistApp) window.MnistApp.showWhy = !!on;
  return [];
}
