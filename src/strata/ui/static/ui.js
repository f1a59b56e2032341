// strata ui: refresh the page's content while something changes (no framework, no build step).
// Every few seconds it asks /api/live (run history and file times only, never the store); when
// its token differs from the page's, it fetches this page again and swaps <main> in place.
"use strict";
(function () {
  const EVERY_MS = 2000;
  let busy = false;

  async function refresh(token) {
    const answer = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("main");
    if (fresh) {
      document.getElementById("main").replaceWith(fresh);
      document.body.dataset.token = token;
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || "0") + 1);
    }
  }

  async function poll() {
    if (busy) return;
    busy = true;
    try {
      const answer = await fetch("/api/live", { headers: { Accept: "application/json" } });
      const live = await answer.json();
      const indicator = document.getElementById("live");
      if (indicator && typeof live.html === "string") {
        indicator.innerHTML = live.html; // built server-side from escaped values
      }
      if (live.token && live.token !== document.body.dataset.token) {
        await refresh(live.token);
      }
    } catch (error) {
      const indicator = document.getElementById("live");
      if (indicator) indicator.textContent = "server stopped";
    } finally {
      busy = false;
    }
  }

  window.setInterval(poll, EVERY_MS);
})();
