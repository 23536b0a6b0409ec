// Huifang console: small enhancements over server-rendered pages. Every
// page works without this file; with it, live parts reload when a
// service's watch reports a change, selects marked data-autosubmit submit
// their form, and forms marked data-confirm ask first.
(function () {
  "use strict";

  // Live parts: <section data-live="queue" data-src="/agent/queue/part" data-args="group=x">.
  // One EventSource per topic and arguments; each change reloads the parts.
  function reload(el) {
    // A part the user is typing or choosing in waits until focus leaves it,
    // so that a change elsewhere does not wipe a half-filled form.
    var a = document.activeElement;
    if (a && el.contains(a) && a.matches("input, select, textarea")) {
      if (!el.dataset.held) {
        el.dataset.held = "1";
        el.addEventListener("focusout", function again() {
          setTimeout(function () {
            if (el.contains(document.activeElement)) { return; }
            el.removeEventListener("focusout", again);
            delete el.dataset.held;
            reload(el);
          }, 0);
        });
      }
      return Promise.resolve();
    }
    return fetch(el.dataset.src, { credentials: "same-origin", headers: { "X-Fragment": "1" } })
      .then(function (res) {
        if (res.status === 401 || res.redirected) { window.location.reload(); return null; }
        return res.ok ? res.text() : null;
      })
      .then(function (html) {
        if (html === null) { return; }
        var active = document.activeElement && document.activeElement.id;
        el.innerHTML = html;
        el.dataset.loaded = String(Date.now());
        el.dispatchEvent(new CustomEvent("live:reloaded", { bubbles: true }));
        if (active) { var again = document.getElementById(active); if (again) { again.focus(); } }
      })
      .catch(function () { /* the next change or poll tries again */ });
  }

  function follow(topic, args, parts) {
    var url = "/live?topic=" + encodeURIComponent(topic) + (args ? "&" + args : "");
    var poll = null;
    var es = new EventSource(url);
    es.addEventListener("change", function () { parts.forEach(reload); });
    function fallBack() {
      if (!poll) { poll = setInterval(function () { parts.forEach(reload); }, 30000); }
    }
    es.addEventListener("gone", function () { es.close(); fallBack(); });
    // A stream refused for good (401 once the session ended): the parts
    // poll instead, and their first 401 reloads the page, which signs in.
    es.addEventListener("error", function () { if (es.readyState === EventSource.CLOSED) { fallBack(); } });
    parts.forEach(function (el) { el.dataset.following = "1"; });
  }

  function start() {
    var groups = {};
    document.querySelectorAll("[data-live][data-src]").forEach(function (el) {
      var key = el.dataset.live + "?" + (el.dataset.args || "");
      (groups[key] = groups[key] || { topic: el.dataset.live, args: el.dataset.args || "", parts: [] }).parts.push(el);
    });
    Object.keys(groups).forEach(function (k) { follow(groups[k].topic, groups[k].args, groups[k].parts); });

    document.addEventListener("change", function (e) {
      var t = e.target;
      if (t.matches && t.matches("select[data-autosubmit]") && t.form) { t.form.requestSubmit(); }
    });
    document.addEventListener("submit", function (e) {
      var f = e.target;
      if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) { e.preventDefault(); }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
