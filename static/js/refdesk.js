/* refdesk.js: small progressive enhancements, no framework.
 *
 * Loaded with `defer` after htmx. No inline scripts or handlers anywhere (CSP: script-src 'self'):
 * everything is wired through data attributes and event delegation, so markup swapped in by
 * htmx (including out-of-band toasts) works without re-binding.
 *
 *   [data-search]                 "/" focuses it
 *   [data-shortcut="new"]         "n" clicks it
 *   tr[data-row] (tabindex="0")   j/k, ArrowDown/ArrowUp move between rows
 *   [data-action="edit"]          Enter on a focused row clicks the row's edit control
 *   [data-action="save"]          Enter in a form-less input inside a row clicks it
 *   [data-lazy-get="url"]         becomes hx-get="url" and is wired by htmx on its first click
 *   [data-cancel]                 Esc inside its form/row/dialog/[data-cancel-scope] clicks it
 *   button[data-copy="value"]     copies value, shows "Copied"
 *   time.relative[datetime]       "2 min ago", exact local time in title; refreshed every minute
 *   input[data-confirm-text="x"]  submit buttons of its form enabled only when value === "x"
 *   [data-dialog-open="id"]       opens <dialog id="id"> as a modal
 *   [data-dialog-close]           closes the enclosing <dialog>
 *   tr.row-new                    highlight fades out (CSS); the class is removed afterwards
 *   .table-wrap                   gets data-overflow="start|end|both" while its table is wider
 *                                 than it (narrow windows), so the page can say it scrolls
 *   .toast                        auto-dismiss after 8 s unless it holds a button/form/link or is
 *                                 .toast-error / [data-sticky]; a close button is added if missing;
 *                                 a successful htmx request from inside a toast (Undo) dismisses it;
 *                                 at most two are shown, the oldest go first
 */
(function () {
  "use strict";

  var TOAST_TIMEOUT_MS = 8000;
  var COPIED_MS = 1600;
  var doc = document;

  /* ------------------------------------------------------------ helpers */

  function isTyping(el) {
    if (!el || el === doc.body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") {
      var type = (el.getAttribute("type") || "text").toLowerCase();
      return ["checkbox", "radio", "button", "submit", "reset", "image", "range", "color", "file"].indexOf(type) === -1;
    }
    return false;
  }

  function isVisible(el) {
    return !!(el && (el.offsetWidth || el.offsetHeight || el.getClientRects().length));
  }

  function firstVisible(selector, root) {
    var list = (root || doc).querySelectorAll(selector);
    for (var i = 0; i < list.length; i++) {
      if (isVisible(list[i]) && !list[i].disabled) return list[i];
    }
    return null;
  }

  function announce(text) {
    var region = doc.getElementById("live-region");
    if (!region) return;
    region.textContent = "";
    // A fresh text node after a tick makes screen readers repeat identical messages.
    window.setTimeout(function () {
      region.textContent = text;
    }, 30);
  }

  function onReady(fn) {
    if (doc.readyState === "loading") doc.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  /* ------------------------------------------------------------ keyboard */

  function rows() {
    return Array.prototype.filter.call(doc.querySelectorAll("tr[data-row]"), isVisible);
  }

  function focusRow(row) {
    if (!row) return;
    if (!row.hasAttribute("tabindex")) row.setAttribute("tabindex", "0");
    row.focus();
    if (row.scrollIntoView) row.scrollIntoView({ block: "nearest" });
  }

  function moveRow(delta) {
    var all = rows();
    if (!all.length) return false;
    var current = doc.activeElement && doc.activeElement.closest ? doc.activeElement.closest("tr[data-row]") : null;
    var index = current ? all.indexOf(current) : -1;
    var next;
    if (index === -1) next = delta > 0 ? all[0] : all[all.length - 1];
    else next = all[Math.max(0, Math.min(all.length - 1, index + delta))];
    focusRow(next);
    return true;
  }

  // The cancel control for an Esc pressed at `start`: the nearest [data-cancel] in the
  // enclosing form / [data-cancel-scope] / row / dialog (never one elsewhere on the page).
  function cancelControlFor(start) {
    if (!start || !start.closest) return null;
    if (start.matches("[data-cancel]")) return start;
    var node = start.closest("form, [data-cancel-scope], tr, dialog");
    while (node) {
      var found = node.querySelector("[data-cancel]");
      if (found) return found;
      if (node.tagName === "TR" || node.tagName === "DIALOG") return null;
      node = node.parentElement && node.parentElement.closest("form, [data-cancel-scope], tr, dialog");
    }
    return null;
  }

  function onKeydown(event) {
    if (event.defaultPrevented) return;
    var key = event.key;
    var target = event.target;
    var active = doc.activeElement;

    // Esc in the search box: clear it (the table follows) and leave it, so j/k move rows again.
    if (key === "Escape" && target.matches && target.matches("[data-search]")) {
      event.preventDefault();
      if (target.value) {
        target.value = "";
        target.dispatchEvent(new Event("search", { bubbles: true }));
      }
      target.blur();
      return;
    }

    // Esc: works while typing too (cancel an inline edit from its input).
    if (key === "Escape") {
      var cancel = cancelControlFor(target);
      if (cancel) {
        event.preventDefault();
        cancel.click();
      }
      return;
    }

    if (event.ctrlKey || event.metaKey || event.altKey) return;

    // Enter in a one-line value box (custom data): save, as in a reference's edit row;
    // Shift+Enter still breaks the line.
    if (key === "Enter" && !event.shiftKey && target.matches && target.matches("textarea[data-enter-saves]")) {
      var row = target.closest("tr, [data-edit-scope]");
      var saveButton = row && row.querySelector('[data-action="save"]');
      if (saveButton) {
        event.preventDefault();
        saveButton.click();
      }
      return;
    }

    // Enter in an input of an inline-edit row that has no <form>: click the row's save.
    if (key === "Enter" && target.tagName === "INPUT" && !target.form) {
      var scope = target.closest("tr, [data-edit-scope]");
      var save = scope && scope.querySelector('[data-action="save"]');
      if (save) {
        event.preventDefault();
        save.click();
      }
      return;
    }

    if (isTyping(target)) return;

    // Enter on a focused row (the row itself, not a button in it): edit.
    if (key === "Enter" && target.matches && target.matches("tr[data-row]")) {
      var edit = target.querySelector('[data-action="edit"]');
      if (edit) {
        event.preventDefault();
        edit.click();
      }
      return;
    }

    switch (key) {
      case "/": {
        var search = firstVisible("[data-search]");
        if (search) {
          event.preventDefault();
          search.focus();
          if (search.select) search.select();
        }
        return;
      }
      case "n": {
        var add = firstVisible('[data-shortcut="new"]');
        if (add) {
          event.preventDefault();
          add.click();
        }
        return;
      }
      case "j":
        if (moveRow(1)) event.preventDefault();
        return;
      case "k":
        if (moveRow(-1)) event.preventDefault();
        return;
      case "ArrowDown":
      case "ArrowUp":
        // Arrows only take over once focus is on a row, so they still scroll the page otherwise.
        if (active && active.closest && active.closest("tr[data-row]")) {
          if (moveRow(key === "ArrowDown" ? 1 : -1)) event.preventDefault();
        }
        return;
      case "ArrowLeft":
      case "ArrowRight": {
        // Roving focus inside a role="tablist" of links.
        var tab = active && active.closest && active.closest('[role="tablist"] [role="tab"]');
        if (!tab) return;
        var tabs = Array.prototype.slice.call(tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]'));
        var i = tabs.indexOf(tab) + (key === "ArrowRight" ? 1 : -1);
        if (i >= 0 && i < tabs.length) {
          event.preventDefault();
          tabs[i].focus();
        }
        return;
      }
      default:
        return;
    }
  }

  /* --------------------------------------------------------------- copy */

  function fallbackCopy(text) {
    var area = doc.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    doc.body.appendChild(area);
    var previous = doc.activeElement;
    area.select();
    var ok = false;
    try {
      ok = doc.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    doc.body.removeChild(area);
    if (previous && previous.focus) previous.focus();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  function onCopyClick(button) {
    var value = button.getAttribute("data-copy");
    if (value === null) return;
    copyText(value).then(
      function () {
        if (!button.hasAttribute("data-label")) {
          button.setAttribute("data-label", button.getAttribute("aria-label") || "");
        }
        button.classList.add("is-copied");
        button.setAttribute("aria-label", "Copied");
        announce("Copied " + value);
        window.clearTimeout(button._refdeskCopyTimer);
        button._refdeskCopyTimer = window.setTimeout(function () {
          button.classList.remove("is-copied");
          var label = button.getAttribute("data-label");
          if (label) button.setAttribute("aria-label", label);
          else button.removeAttribute("aria-label");
        }, COPIED_MS);
      },
      function () {
        announce("Could not copy. Select the text and press Ctrl+C.");
      }
    );
  }

  /* ------------------------------------------------------- relative time */

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function exactLocal(date) {
    var offset = -date.getTimezoneOffset();
    var sign = offset >= 0 ? "+" : "-";
    offset = Math.abs(offset);
    return (
      date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
      " (UTC" + sign + pad(Math.floor(offset / 60)) + ":" + pad(offset % 60) + ")"
    );
  }

  function startOfDay(date) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
  }

  function relative(date, now) {
    var seconds = (now.getTime() - date.getTime()) / 1000;
    if (seconds < -90) {
      return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    }
    if (seconds < 45) return "just now";
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    var hours = Math.floor(minutes / 60);
    var days = Math.round((startOfDay(now) - startOfDay(date)) / 86400000);
    if (hours < 24 && days === 0) return hours + " h ago";
    if (days <= 1) return hours < 24 ? hours + " h ago" : "yesterday";
    if (days < 7) return days + " days ago";
    var sameYear = date.getFullYear() === now.getFullYear();
    return date.toLocaleDateString(undefined, sameYear
      ? { month: "short", day: "numeric" }
      : { year: "numeric", month: "short", day: "numeric" });
  }

  function renderTimes(root) {
    var scope = root && root.querySelectorAll ? root : doc;
    var list = scope.querySelectorAll("time.relative[datetime]");
    var now = new Date();
    for (var i = 0; i < list.length; i++) renderTime(list[i], now);
    if (scope.matches && scope.matches("time.relative[datetime]")) renderTime(scope, now);
  }

  function renderTime(el, now) {
    var date = new Date(el.getAttribute("datetime"));
    if (isNaN(date.getTime())) return;
    var text = relative(date, now);
    if (el.textContent !== text) el.textContent = text;
    var exact = exactLocal(date);
    if (el.getAttribute("title") !== exact) el.setAttribute("title", exact);
  }

  /* --------------------------------------------------- confirm by typing */

  function confirmInputs(root) {
    var scope = root && root.querySelectorAll ? root : doc;
    var list = Array.prototype.slice.call(scope.querySelectorAll("input[data-confirm-text]"));
    if (scope.matches && scope.matches("input[data-confirm-text]")) list.push(scope);
    return list;
  }

  function submitButtons(form) {
    if (!form) return [];
    var list = Array.prototype.slice.call(form.querySelectorAll('button:not([type]), button[type="submit"], input[type="submit"]'));
    if (form.id) {
      list = list.concat(Array.prototype.slice.call(doc.querySelectorAll('[form="' + form.id + '"][type="submit"], button[form="' + form.id + '"]:not([type])')));
    }
    return list;
  }

  function confirmMatches(input) {
    return input.value === input.getAttribute("data-confirm-text");
  }

  function syncConfirm(input) {
    var ok = confirmMatches(input);
    submitButtons(input.form).forEach(function (button) {
      button.disabled = !ok;
    });
    // Red only once the typed text can no longer become the expected one.
    var expected = input.getAttribute("data-confirm-text") || "";
    input.setAttribute("aria-invalid", ok || expected.indexOf(input.value) === 0 ? "false" : "true");
  }

  /* -------------------------------------------------------------- toasts */

  function ensureClose(toast) {
    if (toast.querySelector(".toast-close")) return;
    var body = toast.querySelector(".toast-body");
    if (!body) {
      body = doc.createElement("div");
      body.className = "toast-body";
      while (toast.firstChild) body.appendChild(toast.firstChild);
      toast.appendChild(body);
    }
    var close = doc.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    toast.appendChild(close);
  }

  function dismiss(toast) {
    if (!toast || toast._refdeskLeaving) return;
    toast._refdeskLeaving = true;
    window.clearTimeout(toast._refdeskTimer);
    toast.classList.add("is-leaving");
    window.setTimeout(function () {
      if (toast.parentNode) toast.parentNode.removeChild(toast);
    }, 220);
  }

  function isSticky(toast) {
    // Toasts with an action (Undo, a link) or errors stay until closed.
    if (toast.classList.contains("toast-error") || toast.hasAttribute("data-sticky")) return true;
    return !!toast.querySelector("button:not(.toast-close), a, form, input");
  }

  function schedule(toast) {
    window.clearTimeout(toast._refdeskTimer);
    if (isSticky(toast)) return;
    toast._refdeskTimer = window.setTimeout(function () {
      // Do not pull a toast away from under the pointer or keyboard focus.
      if (toast.matches(":hover") || toast.contains(doc.activeElement)) schedule(toast);
      else dismiss(toast);
    }, TOAST_TIMEOUT_MS);
  }

  function initToast(toast) {
    if (toast._refdeskInit) return;
    toast._refdeskInit = true;
    ensureClose(toast);
    schedule(toast);
  }

  function initToasts(root) {
    var scope = root && root.querySelectorAll ? root : doc;
    var list = scope.querySelectorAll(".toast");
    for (var i = 0; i < list.length; i++) initToast(list[i]);
    if (scope.matches && scope.matches(".toast")) initToast(scope);
    keepNewestToasts();
  }

  // At most MAX_TOASTS at a time: a newer change makes the older toasts (and their Undo)
  // out of date, so the oldest go first.
  var MAX_TOASTS = 2;
  function keepNewestToasts() {
    var region = doc.getElementById("toasts");
    if (!region) return;
    var shown = Array.prototype.filter.call(region.querySelectorAll(".toast"), function (t) {
      return !t._refdeskLeaving;
    });
    for (var i = 0; i < shown.length - MAX_TOASTS; i++) dismiss(shown[i]);
  }

  function toast(text, level) {
    var region = doc.getElementById("toasts");
    if (!region) return;
    var el = doc.createElement("div");
    el.className = "toast toast-" + (level || "info");
    el.setAttribute("role", level === "error" ? "alert" : "status");
    var body = doc.createElement("div");
    body.className = "toast-body";
    body.textContent = text;
    el.appendChild(body);
    region.appendChild(el);
    initToast(el);
    keepNewestToasts();
  }

  /* ------------------------------------------------------------- dialogs */

  function openDialog(id, opener) {
    var dialog = doc.getElementById(id);
    if (!dialog || typeof dialog.showModal !== "function") return;
    dialog._refdeskOpener = opener;
    if (!dialog.open) dialog.showModal();
    confirmInputs(dialog).forEach(function (input) {
      input.value = "";
      syncConfirm(input);
    });
    var focusTarget = dialog.querySelector("[autofocus], input:not([type=hidden]), select, textarea");
    if (focusTarget) focusTarget.focus();
  }

  /* ------------------------------------------------------------ new rows */

  function initRowNew(root) {
    var scope = root && root.querySelectorAll ? root : doc;
    var list = Array.prototype.slice.call(scope.querySelectorAll("tr.row-new"));
    if (scope.matches && scope.matches("tr.row-new")) list.push(scope);
    list.forEach(function (row) {
      window.setTimeout(function () {
        row.classList.remove("row-new");
      }, 3200);
    });
  }

  /* ------------------------------------------- tables wider than their box */

  // Which sides of a .table-wrap hide part of its table: "start", "end", "both" or none.
  function markOverflow(wrap) {
    var hidden = wrap.scrollWidth - wrap.clientWidth;
    var side = "";
    if (hidden > 1) {
      var atStart = wrap.scrollLeft <= 1;
      var atEnd = wrap.scrollLeft >= hidden - 1;
      side = atStart ? "end" : atEnd ? "start" : "both";
    }
    if (side) wrap.setAttribute("data-overflow", side);
    else wrap.removeAttribute("data-overflow");
  }

  var overflowQueued = false;
  function markAllOverflow() {
    if (overflowQueued) return;
    overflowQueued = true;
    window.requestAnimationFrame(function () {
      overflowQueued = false;
      Array.prototype.forEach.call(doc.querySelectorAll(".table-wrap"), markOverflow);
    });
  }

  /* ------------------------------------------------------------- wiring */

  function initAll(root) {
    renderTimes(root);
    confirmInputs(root).forEach(syncConfirm);
    initToasts(root);
    initRowNew(root);
    markAllOverflow();
  }

  window.addEventListener("resize", markAllOverflow);
  doc.addEventListener("scroll", function (event) {
    var wrap = event.target;
    if (wrap.classList && wrap.classList.contains("table-wrap")) markOverflow(wrap);
  }, true);

  doc.addEventListener("keydown", onKeydown);

  // htmx wires content it swaps in only when the swap settles (20 ms later). A click, or a key
  // that clicks (Esc, Enter, n), landing in that window would follow the plain href or submit
  // the form without htmx. Wire the control first: listeners added during the capture phase
  // still run when the event reaches the element, and htmx.process skips what is already wired.
  //
  // The same wiring serves [data-lazy-get="url"]: an hx-get that htmx is given on first use.
  // A References page has 50 rows of three buttons: htmx wiring them all at DOMContentLoaded
  // was two thirds of that long task (Lighthouse's total blocking time). Their hx-target and
  // hx-swap stay in the markup.
  function wireBeforeUse(event) {
    var target = event.target;
    if (!window.htmx || !target || !target.closest) return;
    var lazy = target.closest("[data-lazy-get]");
    if (lazy) {
      lazy.setAttribute("hx-get", lazy.getAttribute("data-lazy-get"));
      lazy.removeAttribute("data-lazy-get");
    }
    var control = target.closest("[hx-get], [hx-post], [hx-put], [hx-patch], [hx-delete]");
    if (control) window.htmx.process(control);
    var form = target.tagName === "FORM" ? target : target.form;
    if (form && form !== control) window.htmx.process(form);
  }
  doc.addEventListener("click", wireBeforeUse, true);
  doc.addEventListener("submit", wireBeforeUse, true);

  doc.addEventListener("click", function (event) {
    var target = event.target;
    if (!target.closest) return;
    var copy = target.closest("button[data-copy]");
    if (copy) {
      event.preventDefault();
      onCopyClick(copy);
      return;
    }
    var close = target.closest(".toast-close");
    if (close) {
      dismiss(close.closest(".toast"));
      return;
    }
    var opener = target.closest("[data-dialog-open]");
    if (opener) {
      event.preventDefault();
      openDialog(opener.getAttribute("data-dialog-open"), opener);
      return;
    }
    var closer = target.closest("[data-dialog-close]");
    if (closer) {
      var dialog = closer.closest("dialog");
      if (dialog) {
        event.preventDefault();
        dialog.close();
      }
    }
  });

  // A click on the backdrop (outside the dialog box) closes a modal dialog.
  doc.addEventListener("mousedown", function (event) {
    var dialog = event.target;
    if (dialog.tagName !== "DIALOG" || !dialog.open) return;
    var box = dialog.getBoundingClientRect();
    if (event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom) {
      dialog.close();
    }
  });

  doc.addEventListener("close", function (event) {
    var dialog = event.target;
    if (dialog.tagName === "DIALOG" && dialog._refdeskOpener && doc.contains(dialog._refdeskOpener)) {
      dialog._refdeskOpener.focus();
    }
  }, true);

  doc.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("input[data-confirm-text]")) syncConfirm(event.target);
  });

  // Never submit a confirm-by-typing form whose text does not match (e.g. Enter pressed early).
  doc.addEventListener("submit", function (event) {
    var input = event.target.querySelector && event.target.querySelector("input[data-confirm-text]");
    if (input && !confirmMatches(input)) {
      event.preventDefault();
      event.stopPropagation();
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }, true);
  // htmx listens for submit on the form itself; guard its request too.
  doc.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail && event.detail.elt;
    var form = elt && (elt.tagName === "FORM" ? elt : elt.form || (elt.closest && elt.closest("form")));
    var input = form && form.querySelector("input[data-confirm-text]");
    if (input && !confirmMatches(input)) event.preventDefault();
  });

  // Toasts added later (htmx out-of-band swaps into #toasts, or anything else).
  function observeToasts() {
    var region = doc.getElementById("toasts");
    if (!region || !window.MutationObserver) return;
    new MutationObserver(function (mutations) {
      mutations.forEach(function (m) {
        Array.prototype.forEach.call(m.addedNodes, function (node) {
          if (node.nodeType === 1) initToasts(node);
        });
      });
    }).observe(region, { childList: true, subtree: true });
  }

  // htmx: enhance swapped content, and say so when a request fails.
  doc.addEventListener("htmx:load", function (event) {
    var elt = event.target;
    initAll(elt);
    // A row swapped back in after save/cancel: keep keyboard focus on it, not lost to <body>.
    if (elt && elt.matches && elt.matches("tr[data-row]") && (!doc.activeElement || doc.activeElement === doc.body)) {
      elt.focus({ preventScroll: true });
    }
  });
  doc.addEventListener("htmx:afterSwap", function (event) {
    initAll(event.target);
  });
  doc.addEventListener("htmx:oobAfterSwap", function (event) {
    initAll(event.detail && event.detail.target ? event.detail.target : event.target);
  });
  // An action inside a toast (Undo) that succeeded: the toast has done its job.
  doc.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    var owner = elt && elt.closest && elt.closest(".toast");
    if (owner && event.detail.successful) dismiss(owner);
  });

  doc.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    var text = status === 403
      ? "You do not have permission to do that."
      : status === 404
        ? "Not found. It may have been deleted; reload the page."
        : "Something went wrong" + (status ? " (" + status + ")" : "") + ". Nothing was changed by this request; try again.";
    toast(text, "error");
  });
  doc.addEventListener("htmx:sendError", function () {
    toast("Could not reach the server. Check your connection and try again.", "error");
  });

  onReady(function () {
    initAll(doc);
    observeToasts();
    window.setInterval(function () {
      renderTimes(doc);
    }, 60000);
  });

  // Small public surface for other scripts (loaded from files, never inline).
  window.refdesk = { toast: toast, copy: copyText, renderTimes: renderTimes, focusRow: focusRow };
})();
