// The visitor's owner token (mnist_web/owners.py): random and unguessable, made once and kept in this
// browser (localStorage 'mnist-owner'), mirrored to the cookie mnist_owner (SameSite=Strict) so every
// request of the page carries it: the runs this browser trains are its own, a reload finds its job.
// Runs in the page's <head>, before the app starts. Never shown, never sent anywhere else.
(() => {
  const KEY = 'mnist-owner', VALID = /^[A-Za-z0-9_-]{22,128}$/;
  let token = null;
  try { token = localStorage.getItem(KEY); } catch (e) { /* storage blocked: the cookie alone */ }
  if (!token || !VALID.test(token)) {
    const m = document.cookie.match(/(?:^|;\s*)mnist_owner=([A-Za-z0-9_-]+)/);
    token = m && VALID.test(m[1]) ? m[1] : null;
  }
  if (!token) {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
  }
  try { localStorage.setItem(KEY, token); } catch (e) { /* as above */ }
  document.cookie = `mnist_owner=${token}; path=/; max-age=31536000; SameSite=Strict`;
})();
