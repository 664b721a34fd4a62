// Teach and Download: the inputs they send are My digits (web/mydigits.js, window.MnistApp.digits, kept
// in this browser) and the model chosen now (window.MnistApp.model, web/kit.js). Run by Gradio in the
// page before the request.
(drawings, model) => {
  const app = window.MnistApp, digits = app && app.digits;
  return [digits ? digits.payload() : [], (app && app.model) || model || ''];
}
