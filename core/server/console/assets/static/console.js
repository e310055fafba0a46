// Custody console: the little script the pages use. Everything works
// without it; it adds live progress to the export page.
(function () {
  "use strict";
  var job = document.getElementById("export-job");
  if (!job || job.dataset.state !== "running") {
    return;
  }
  var progress = document.getElementById("export-progress");
  var state = document.getElementById("export-state");
  var report = document.getElementById("export-report");
  // Counts only: how many people were read, how many rows written.
  function stageText(p) {
    switch (p.stage) {
      case "writing": return (p.rows || 0) + " of " + p.total + " rows written…";
      case "ledger": return "recording the " + p.total + " recipients before sending…";
      case "done": return "finishing…";
      default: return (p.people || 0) + " people checked through the policy gate…";
    }
  }
  function show(st) {
    if (st.state === "running") {
      state.textContent = "Running for " + Math.round(st.elapsed_seconds) + " s: " + stageText(st.progress || {});
      var p = st.progress || {};
      if (p.total > 0 && p.stage !== "evaluating") {
        progress.max = p.total;
        progress.value = p.rows;
      }
      return false;
    }
    progress.value = 1;
    if (st.state === "done") {
      state.textContent = "Done in " + st.elapsed_seconds.toFixed(1) + " s.";
      var r = st.report;
      var rows = [["Rows written", r.rows], ["Not consented", r.not_consented], ["Export denied", r.export_denied],
        ["Fields", (r.fields || []).join(", ")], ["Export id", r.id]];
      report.textContent = "";
      rows.forEach(function (kv) {
        var dt = document.createElement("dt");
        dt.textContent = kv[0];
        var dd = document.createElement("dd");
        dd.textContent = String(kv[1]);
        if (kv[0] === "Rows written") { dd.id = "export-rows"; }
        report.appendChild(dt);
        report.appendChild(dd);
      });
      report.hidden = false;
    } else {
      state.textContent = "Failed: " + (st.error || "unknown error");
    }
    job.dataset.state = st.state;
    return true;
  }
  function poll() {
    fetch(job.dataset.status, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (st) { if (!show(st)) { setTimeout(poll, 500); } })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
}());
