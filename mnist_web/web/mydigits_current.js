// The Draw canvas's `change` listener for My digits (web/mydigits.js, window.MnistApp.digits): the
// strokes now on the canvas, kept in the page for the "It's a ..." buttons and the keys 0-9. Run by
// Gradio in the page (fn=None).
(value) => {
  const digits = window.MnistApp && window.MnistApp.digits;
  if (digits) digits.current(value);
  return [];
}
