/* references.js: the References page's small extras (refdesk.js does the general keyboard,
 * copy, toast and confirm work). No inline scripts: everything is wired by data attributes.
 *
 *   [data-clear="#sel"]   click empties #sel (Cancel of the in-place Add form) and puts focus
 *                         back on the Add button
 *   after a tab switch    focus stays on the selected tab (the tab bar was swapped)
 *   after a row swap      focus goes to the swapped row unless something in it took focus
 */
(function () {
  "use strict";
  var doc = document;

  doc.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-clear]");
    if (!button) return;
    event.preventDefault();
    var target = doc.querySelector(button.getAttribute("data-clear"));
    if (target) target.innerHTML = "";
    var add = doc.querySelector('[data-shortcut="new"]');
    if (add) add.focus();
  });

  function focusLost() {
    return !doc.activeElement || doc.activeElement === doc.body;
  }

  doc.addEventListener("htmx:afterSettle", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.matches) return;
    if (elt.id === "ref-page" && focusLost()) {
      var tab = doc.querySelector('#ref-tabs [aria-selected="true"]');
      if (tab) tab.focus();
      return;
    }
    var group = elt.matches("tbody.ref-group") ? elt : null;
    if (!group && elt.id && elt.id.indexOf("ref-") === 0 && elt.tagName === "TBODY") group = elt;
    if (group && focusLost()) {
      var row = group.querySelector("tr[data-row][tabindex]");
      if (row) row.focus({ preventScroll: true });
    }
  });
})();
