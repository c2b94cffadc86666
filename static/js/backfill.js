/* backfill.js: the import's Apply button streams progress instead of leaving the page blank.
 *
 *   form[data-import-apply]   submitted with fetch(); the server answers one JSON object per
 *                             line ({phase, done, total}, then {finished, url} or {error, url});
 *                             [data-import-progress] (with a <progress>) shows how far it is.
 * Without JavaScript the form posts normally and the server redirects when the import is done.
 */
(function () {
  "use strict";

  function show(form, selector, visible) {
    var el = form.querySelector(selector);
    if (el) el.hidden = !visible;
    return el;
  }

  function update(form, event) {
    var bar = form.querySelector("progress");
    var phase = form.querySelector("[data-import-phase]");
    var count = form.querySelector("[data-import-count]");
    if (phase && event.phase) phase.textContent = event.phase + "…";
    if (bar && event.total) {
      bar.max = event.total;
      bar.value = event.done;
    }
    if (count && event.total) {
      count.textContent = event.done.toLocaleString() + " of " + event.total.toLocaleString();
    }
  }

  function fail(form, message) {
    var box = show(form, "[data-import-error]", true);
    if (box) box.textContent = message;
    show(form, "[data-import-progress]", false);
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = false;
  }

  async function apply(form) {
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    show(form, "[data-import-error]", false);
    show(form, "[data-import-progress]", true);
    var response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/x-ndjson" },
      credentials: "same-origin",
    });
    if (!response.ok || !response.body) {
      fail(form, "The import could not start (" + response.status + "). Nothing was written.");
      return;
    }
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var pending = "";
    var last = null;
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      pending += decoder.decode(chunk.value, { stream: true });
      var lines = pending.split("\n");
      pending = lines.pop();
      lines.forEach(function (line) {
        if (!line.trim()) return;
        last = JSON.parse(line);
        update(form, last);
      });
    }
    if (last && last.finished) {
      window.location.assign(last.url);
    } else if (last && last.error) {
      fail(form, last.error);
    } else {
      fail(form, "The connection was lost before the import finished. Nothing was written; try again.");
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-import-apply]");
    if (!form || !window.fetch || !window.TextDecoder) return;
    event.preventDefault();
    apply(form).catch(function () {
      fail(form, "The connection was lost before the import finished. Nothing was written; try again.");
    });
  });
})();
