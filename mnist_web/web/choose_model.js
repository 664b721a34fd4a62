// After the server has taken (or refused) a model picked in the picker, or a run was deleted: the
// page loads that model's weights for its own live label (window.MnistApp's 'choose' event, heard by
// the canvas, web/sketch.js). Run by Gradio in the page (fn=None).
(key) => {
  if (window.MnistApp) window.MnistApp.emit('choose', key);
  return [];
}
