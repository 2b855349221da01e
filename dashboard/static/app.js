// Live updates by short polling: every 2 s, refetch the page's live fragment and swap it
// in, unless the user is in the middle of using a control inside it.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  function url() {
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "1");
    return u.toString();
  }
  function busy() {
    var a = document.activeElement;
    return a && live.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }
  function refresh() {
    if (document.hidden || busy()) return;
    fetch(url(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { live.innerHTML = html; document.body.classList.remove("stale"); })
      .catch(function () { document.body.classList.add("stale"); });
  }
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
  if (live) setInterval(refresh, 2000);
})();
