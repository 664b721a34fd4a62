// The "Show why" checkbox changed: the canvas asks for an explanation at pen-up only while it is on
// (window.MnistApp.showWhy, read by web/sketch.js); switched on, the page fetches the chosen model's
// look-alike index (web/explain.js), so the next pen-up is explained in the page. Run by Gradio in the
// page (fn=None).
(on) => {
  const app = window.MnistApp;
  if (app) app.showWhy = !!on;
  if (on && app && app.net && window.MnistExplain) window.MnistExplain.load(app.key);
  return [];
}
