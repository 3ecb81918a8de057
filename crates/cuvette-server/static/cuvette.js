// Cuvette progressive enhancement: every page works without this file.
// - Focus the error summary, or the first field marked data-autofocus.
// - Result grid: show the flag as you type (limits rendered by the server in data-*),
//   Enter moves to the next cell instead of submitting, Ctrl+Enter saves.
// - Scanner-friendly fields: Enter commits the field, never the page, unless data-submit-on-enter.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); } else {
      var first = document.querySelector("[data-autofocus]");
      if (first) first.focus();
    }
    document.querySelectorAll("button[data-print]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () { window.print(); });
    });
    var cells = Array.prototype.slice.call(document.querySelectorAll("input.cell"));
    cells.forEach(function (cell, i) {
      cell.addEventListener("input", function () { liveFlag(cell); });
      cell.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); cell.form.requestSubmit(); return; }
        if (e.key === "Enter") {
          e.preventDefault();
          var flag = liveFlag(cell);
          // A critical or out-of-range value stops the auto-advance: press Enter again to go on.
          if ((flag === "CRIT L" || flag === "CRIT H" || flag.indexOf("AMR") >= 0) && cell.dataset.confirmed !== cell.value) {
            cell.dataset.confirmed = cell.value; return;
          }
          var next = cells[i + 1];
          if (next) next.focus(); else cell.form.querySelector("button[type=submit]").focus();
        }
      });
      liveFlag(cell);
    });
    document.querySelectorAll("input.scan").forEach(function (f) {
      f.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !f.hasAttribute("data-submit-on-enter")) {
          e.preventDefault();
          var fields = Array.prototype.slice.call(f.form.querySelectorAll("input:not([type=hidden]),select,button"));
          var next = fields[fields.indexOf(f) + 1];
          if (next) next.focus();
        }
      });
    });
  });
  // "/" goes to the search field at the top of every page (a scan then lands there), unless
  // the person is typing in a field, where "/" is a character (a date, a dilution).
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
        (t.tagName === "INPUT" && t.type !== "checkbox" && t.type !== "radio"))) return;
    var field = document.getElementById("global-q");
    if (!field) return;
    e.preventDefault();
    field.focus();
    field.select();
  });
  // Keyboard flow for lists (review queue, worklist): j/k or arrows move between rows, v
  // verifies the selection, c opens the critical-call form of the current row. Single keys
  // act only when focus is not in a text field.
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" && t.type !== "checkbox" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    var table = document.querySelector("table.review, table.worklist, table.grid");
    if (!table) return;
    var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr"));
    var targets = rows.map(function (r) { return r.querySelector("input[type=checkbox], a"); }).filter(Boolean);
    var current = targets.indexOf(document.activeElement);
    var move = function (d) {
      var next = targets[Math.max(0, Math.min(targets.length - 1, current + d))];
      if (next) { next.focus(); e.preventDefault(); }
    };
    if (e.key === "j" || e.key === "ArrowDown") move(current < 0 ? 0 : 1);
    else if (e.key === "k" || e.key === "ArrowUp") move(current < 0 ? 0 : -1);
    else if (e.key === "v") { var b = document.querySelector("button.verify"); if (b) { e.preventDefault(); b.click(); } }
    else if (e.key === "c" && current >= 0) {
      var row = document.activeElement.closest("tr");
      var link = row && row.querySelector("a[href*='critical-call']");
      if (link) { e.preventDefault(); link.click(); }
    }
  });
  function num(v) { return v === undefined || v === "" ? null : parseFloat(v); }
  function liveFlag(cell) {
    var out = document.getElementById(cell.id + "-flag");
    if (!out) return "";
    var text = cell.value.trim(), flag = "";
    var m = /^(<=|>=|<|>)?\s*(-?\d+(\.\d+)?)$/.exec(text);
    var d = cell.dataset;
    if (text === "") flag = "";
    else if (d.kind === "numeric" && !m) flag = "INV";
    else if (m) {
      var x = parseFloat(m[2]);
      var cl = num(d.critLow), ch = num(d.critHigh), lo = num(d.low), hi = num(d.high), al = num(d.amrLow), ah = num(d.amrHigh);
      if (cl !== null && x < cl) flag = "CRIT L";
      else if (ch !== null && x > ch) flag = "CRIT H";
      else if (lo !== null && x < lo) flag = "L";
      else if (hi !== null && x > hi) flag = "H";
      if (!m[1] && al !== null && x < al) flag += (flag ? " " : "") + "<AMR";
      if (!m[1] && ah !== null && x > ah) flag += (flag ? " " : "") + ">AMR";
    } else if (d.kind === "coded" && d.allowed) {
      var allowed = d.allowed.split("|").map(function (s) { return s.toLowerCase(); });
      var normal = (d.normal || "").split("|").map(function (s) { return s.toLowerCase(); });
      if (allowed.indexOf(text.toLowerCase()) < 0) flag = "INV";
      else if (normal.indexOf(text.toLowerCase()) < 0) flag = "A";
    }
    out.textContent = flag;
    out.className = "flag " + (flag.indexOf("CRIT") === 0 ? "crit" : flag === "INV" ? "inv" : flag ? "abn" : "");
    return flag;
  }
  // Critical-call banner (DOMAIN §7): the server draws it into every signed-in page that may
  // see results, so it shows with JavaScript off. This only refreshes it every 30 s and when
  // the tab comes back, so the alert reaches a bench that stays on one page. The container is
  // replaced only when the text changes, so a screen reader announces a change, not every poll.
  // The poll does not count as activity on the session (the server only peeks at it), so
  // the automatic logoff of an unattended workstation still comes.
  var BANNER_EVERY_MS = 30 * 1000;
  function criticalBanner() {
    var box = document.getElementById("critical-banner");
    if (!box || !window.fetch) return;
    var src = box.getAttribute("data-src"), shown = box.innerHTML.trim();
    function refresh() {
      fetch(src, { credentials: "same-origin", cache: "no-store", redirect: "error", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : shown; })
        .then(function (html) {
          html = html.trim();
          if (html !== shown) { shown = html; box.innerHTML = html; }
        })
        .catch(function () { /* offline: keep what is shown */ });
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
    setInterval(function () { if (!document.hidden) refresh(); }, BANNER_EVERY_MS);
  }

  // Live "minutes waiting" on the critical-call list: counted from the server's clock at render
  // (data-now), so a workstation with a wrong clock still shows the right wait. Crossing the
  // lab's limit (data-limit) reveals the row's OVERDUE chip: text, not colour alone.
  var loadedAt = Date.now();
  function minutesText(m) { return m < 120 ? m + " min" : Math.floor(m / 60) + " h " + (m % 60) + " min"; }
  function tickTimers() {
    document.querySelectorAll("[data-entered][data-now]").forEach(function (el) {
      var now = Number(el.dataset.now) + (Date.now() - loadedAt);
      var m = Math.max(0, Math.floor((now - Number(el.dataset.entered)) / 60000));
      el.textContent = minutesText(m);
      var limit = Number(el.dataset.limit), row = el.closest("tr");
      if (row && limit && m >= limit) {
        var chip = row.querySelector("[data-overdue-chip]"), note = row.querySelector("[data-within-note]");
        if (chip) chip.hidden = false;
        if (note) note.hidden = true;
      }
    });
  }

  // Forms marked data-confirm ask first in a dialog whose default button is Cancel, so Enter
  // never confirms (UX §2.4). Without JavaScript the form submits directly.
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (form.dataset.confirmed === "yes") return;
        e.preventDefault();
        var d = document.createElement("dialog");
        if (typeof d.showModal !== "function") {
          if (window.confirm(form.dataset.confirm + "\n\n" + (form.dataset.confirmDetail || ""))) {
            form.dataset.confirmed = "yes"; form.submit();
          }
          return;
        }
        d.className = "confirm-dialog";
        d.setAttribute("aria-labelledby", "confirm-title");
        var h = document.createElement("h2"); h.id = "confirm-title"; h.textContent = form.dataset.confirm;
        var p = document.createElement("p"); p.textContent = form.dataset.confirmDetail || "";
        var actions = document.createElement("div"); actions.className = "actions";
        var cancel = document.createElement("button"); cancel.type = "button"; cancel.className = "secondary"; cancel.textContent = "Cancel";
        var ok = document.createElement("button"); ok.type = "button"; ok.className = "danger"; ok.textContent = form.dataset.confirmButton || "Confirm";
        actions.appendChild(cancel); actions.appendChild(ok);
        d.appendChild(h); d.appendChild(p); d.appendChild(actions);
        document.body.appendChild(d);
        d.addEventListener("close", function () { d.remove(); });
        cancel.addEventListener("click", function () { d.close(); });
        ok.addEventListener("click", function () { form.dataset.confirmed = "yes"; d.close(); form.submit(); });
        d.showModal();
        cancel.focus();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    criticalBanner();
    confirmForms();
    if (document.querySelector("[data-entered][data-now]")) setInterval(tickTimers, 30 * 1000);
  });
})();
