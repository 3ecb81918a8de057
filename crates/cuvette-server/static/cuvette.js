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
})();
