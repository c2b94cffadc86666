/* backfill.js: the import's Apply button says what it is doing while the page posts.
 *
 *   form[data-import-apply]   on submit the button is disabled (no double import) and
 *                             [data-import-progress] says how many references are written.
 * Large imports run as a background job: the page then shows the job's progress bar.
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-import-apply]");
    if (!form) return;
    var button = form.querySelector("button[type=submit]");
    var progress = form.querySelector("[data-import-progress]");
    if (button) {
      // Disable after the submit has been taken, so the form still posts the button's data.
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
    if (progress) progress.hidden = false;
  });
})();
