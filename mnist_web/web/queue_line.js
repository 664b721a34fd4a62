// The Train tab's line on the training queue ("2 runs going, 3 waiting"), refreshed from GET queue_status
// every 3 s while the line is on screen (its tab shown, the page in front): plain HTTP, nothing through
// Gradio's queue, and no request at all while the Draw or Inspect tab is shown. Run by Gradio as the
// gr.HTML's js_on_load (`element`); the first value is rendered by the server (train_views.queue_html).
const PERIOD_MS = 3000;
let timer = null, onScreen = false, busy = false;

// Really shown: not in a hidden tab (whatever the observer said of a box of no size) and the page in front.
function shown() {
  const box = element.getBoundingClientRect();
  return element.offsetParent !== null && box.width > 0 && box.height > 0 && document.visibilityState === 'visible';
}

async function refresh() {
  if (!onScreen || busy || !shown()) return;
  busy = true;
  try {
    const r = await fetch('queue_status', { cache: 'no-store' });
    const line = element.querySelector('.queue-info');
    if (!r.ok || !line) return;
    const s = await r.json();
    line.dataset.running = s.running; line.dataset.waiting = s.waiting; line.dataset.slots = s.slots;
    line.textContent = s.text;
    line.dataset.refreshed = (+line.dataset.refreshed || 0) + 1;
  } catch (e) {
    // the server is restarting or the network is down: the line keeps its last numbers
  } finally {
    busy = false;
  }
}

new IntersectionObserver((entries) => {
  onScreen = entries.some((e) => e.isIntersecting);
  if (onScreen && timer === null) { refresh(); timer = setInterval(refresh, PERIOD_MS); }
  if (!onScreen && timer !== null) { clearInterval(timer); timer = null; }
}).observe(element);
document.addEventListener('visibilitychange', refresh);
