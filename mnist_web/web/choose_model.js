// After the server has taken (or refused) a model picked in the picker, or a run was deleted: the
// page loads that model's weights for its own live label. Run by Gradio in the page (fn=None).
(key) => {
  if (window.MnistLive && window.MnistLive.choose) window.MnistLive.choose(key);
  return [];
}
