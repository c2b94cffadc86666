/* records.js: Records pages. Loaded from a file (CSP: script-src 'self').
 *
 *   form[data-drop-empty]   htmx GETs from this form (or controls tied to it) leave out empty
 *                           fields, and fields still at their [data-default] value, so the
 *                           pushed URL reads ?q=5001, not ?q=5001&known_to=&per_page=50...
 */
(function () {
  "use strict";

  function droppingForm(elt) {
    if (!elt || !elt.closest) return null;
    var form = elt.closest("form[data-drop-empty]");
    if (form) return form;
    var include = elt.getAttribute("hx-include");
    var target = include && include.charAt(0) === "#" ? document.querySelector(include) : null;
    return target && target.matches("form[data-drop-empty]") ? target : null;
  }

  function defaults(form) {
    var found = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.hasAttribute("data-default")) {
        found[field.name] = field.getAttribute("data-default");
      }
    });
    return found;
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    var form = detail && detail.verb === "get" ? droppingForm(detail.elt) : null;
    var data = detail && detail.formData;
    if (!form || !data || typeof data.forEach !== "function") return;
    var byDefault = defaults(form);
    var names = [];
    data.forEach(function (value, name) {
      if (names.indexOf(name) === -1) names.push(name);
    });
    names.forEach(function (name) {
      // One value per name (a control tied to the form with form= can come twice).
      var values = data.getAll(name);
      var value = values[values.length - 1];
      data.delete(name);
      if (value !== "" && value !== byDefault[name]) data.append(name, value);
    });
  });
})();
