// After an upload: the server's answer (/restore_digits: {drawings} or {error}) into My digits
// (web/mydigits.js, window.MnistApp.digits), all of it or nothing. Run by Gradio in the page (fn=None).
(result) => {
  const digits = window.MnistApp && window.MnistApp.digits;
  if (digits && result) digits.restore(result);
  return [];
}
