#include "tools/teach/html.h"

namespace tpu {
namespace {

constexpr const char* kHead = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tpusim explain</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 8px; }
#controls { display: flex; gap: 8px; align-items: center; margin: 8px 0 12px; flex-wrap: wrap; }
#controls button { font-size: 14px; padding: 4px 10px; }
#scrub { width: 420px; }
#cycle { font-weight: bold; font-size: 16px; min-width: 90px; display: inline-block; }
#phase { color: #555; }
#main { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
table.array { border-collapse: separate; border-spacing: 4px; }
table.array td { vertical-align: middle; }
.pe { width: 92px; height: 62px; border: 2px solid #999; border-radius: 6px; background: #fff;
      font: 12px/1.35 ui-monospace, monospace; padding: 3px 5px; box-sizing: border-box; }
.pe.active { border-color: #1a73e8; background: #e8f0fe; }
.pe.idle { border-style: dashed; border-color: #ccc; color: #aaa; background: #f0f0f0; }
.pe.idle div { color: #aaa; }
.pe .w { color: #8a4b00; }
.pe .x { color: #0b6e2e; }
.pe .p { color: #6a1b9a; }
.feed { font: 12px ui-monospace, monospace; color: #0b6e2e; text-align: right;
        white-space: nowrap; }
.feed .next { font-weight: bold; }
.leave { font: 12px ui-monospace, monospace; color: #6a1b9a; text-align: center; height: 34px; }
.leave.on { font-weight: bold; background: #f3e5f5; border-radius: 4px; }
.axis { font: 11px ui-monospace, monospace; color: #777; text-align: center; }
h2 { font-size: 15px; margin: 4px 0; }
table.acc { border-collapse: collapse; font: 12px ui-monospace, monospace; }
table.acc td, table.acc th { border: 1px solid #ccc; padding: 1px 6px; text-align: right; }
table.acc td.fresh { background: #f3e5f5; font-weight: bold; }
#units div { margin: 2px 0; font: 12px ui-monospace, monospace; }
#program { font: 12px ui-monospace, monospace; border-collapse: collapse; }
#program td { padding: 1px 6px; white-space: nowrap; }
#program tr.queued td { color: #555; }
#program tr.waiting td { background: #fff3cd; }
#program tr.busy td { background: #d2e3fc; }
#program tr.done td { color: #999; }
#summary { font: 12px ui-monospace, monospace; white-space: pre; background: #fff;
           border: 1px solid #ddd; padding: 6px; }
.legend { color: #555; font-size: 12px; margin: 4px 0 8px; }
</style>
</head>
<body>
<h1 id="title">tpusim explain</h1>
<div class="legend">Each PE shows <span style="color:#8a4b00">w</span> the weight it multiplies by,
<span style="color:#0b6e2e">x</span> the activation passing right (with its row m of X) and
<span style="color:#6a1b9a">p</span> the partial sum it passes down. Inputs wait skewed at the
left edge; results leave the bottom into the accumulators. Dashed PEs lie outside the weight tile
of the stream passing (rows &ge; K<sub>t</sub> or columns &ge; N<sub>t</sub>): they hold zeros.</div>
<div id="controls">
<button id="first" title="cycle 0">&#x25C0;&#x25C0; 0</button>
<button id="prev" title="previous cycle (left arrow)">&#x25C0; step</button>
<button id="play" title="play / pause (space)">&#x25B6; play</button>
<button id="next" title="next cycle (right arrow)">step &#x25B6;</button>
<button id="nextchange" title="next cycle where something happens">
next event &#x25B6;&#x25B6;</button>
<input type="range" id="scrub" min="0" value="0">
<span id="cycle">cycle 0</span>
<label>speed <select id="speed"><option value="1000">1/s</option>
<option value="400" selected>2.5/s</option><option value="150">7/s</option>
<option value="40">25/s</option></select></label>
<span id="phase"></span>
</div>
<div id="main">
<div><table class="array" id="array"></table></div>
<div><h2>Accumulators</h2><table class="acc" id="acc"></table>
<h2>Units</h2><div id="units"></div></div>
</div>
<h2>Instructions</h2>
<table id="program"></table>
<h2>Summary</h2>
<div id="summary"></div>
<script type="application/json" id="data">)HTML";

constexpr const char* kTail = R"HTML(</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const R = D.rows, C = D.cols, T = Math.max(D.total_cycles, 1);
const steps = D.cycles;  // stepped cycles, increasing t
const units = ["dma", "weight_load", "matmul", "vector"];
const el = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined) ? "" : String(Math.round(v * 1e6) / 1e6);
let t = 0, timer = null;

// The last step at or before cycle c (index into steps), or -1.
function lastStep(c) {
  let lo = 0, hi = steps.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid].t <= c) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
  }
  return found;
}

function build() {
  el("title").textContent = "tpusim explain: " + R + " x " + C + " array, " + D.dtype + ", " +
      D.total_cycles + " cycles";
  const table = el("array");
  let head = "<tr><td></td>";
  for (let n = 0; n < C; n++) head += "<td class='axis'>col " + n + "</td>";
  table.insertAdjacentHTML("beforeend", head + "</tr>");
  for (let k = 0; k < R; k++) {
    let row = "<tr><td class='feed' id='feed-" + k + "'></td>";
    for (let n = 0; n < C; n++) {
      row += "<td><div class='pe' id='pe-" + k + "-" + n + "'><div class='w'></div>" +
             "<div class='x'></div><div class='p'></div></div></td>";
    }
    table.insertAdjacentHTML("beforeend", row + "<td class='axis'>row " + k + "</td></tr>");
  }
  let out = "<tr><td class='axis'>to the accumulators</td>";
  for (let n = 0; n < C; n++) out += "<td class='leave' id='out-" + n + "'></td>";
  table.insertAdjacentHTML("beforeend", out + "</tr>");
  const program = el("program");
  for (const i of D.instructions) {
    const tr = document.createElement("tr");
    tr.id = "inst-" + i.pc;
    for (const [cls, text] of [["", i.pc], ["", i.unit], ["state", ""], ["", i.asm]]) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    program.appendChild(tr);
  }
  el("summary").textContent = D.summary;
  el("scrub").max = T - 1;
}

// An instruction's state in cycle c, and why it waits.
function stateOf(i, c) {
  if (i.finish !== undefined && c >= i.finish) return ["done", ""];
  if (i.start !== undefined && c >= i.start) return ["busy", ""];
  if (i.take !== undefined && c >= i.take) {
    const w = i.waits.find((w) => w.unit === i.unit && w.from <= c && c < w.to);
    return ["waiting", w ? w.cause : ""];
  }
  if (i.issue !== undefined && c >= i.issue) return ["queued", ""];
  return ["", ""];
}

function render() {
  el("cycle").textContent = "cycle " + t;
  el("scrub").value = t;
  const si = lastStep(t);
  const step = si >= 0 && steps[si].t === t ? steps[si] : null;
  const weights = si >= 0 ? steps[si].w : null;
  // A PE works for the stream passing through it, else for the last one started by now.
  const started = D.streams.filter((s) => s.start <= t);
  const latest = started.length ? started[started.length - 1] : D.streams[0];
  for (let k = 0; k < R; k++) {
    for (let n = 0; n < C; n++) {
      const at = k * C + n, pe = el("pe-" + k + "-" + n);
      const w = weights ? weights[at] : 0;
      const x = step ? step.x[at] : null, m = step ? step.m[at] : null;
      const p = step ? step.p[at] : null;
      pe.dataset.w = fmt(w);
      pe.dataset.x = fmt(x);
      pe.dataset.m = fmt(m);
      pe.dataset.p = fmt(p);
      pe.children[0].textContent = "w " + fmt(w);
      pe.children[1].textContent = x === null ? "x ." : "x " + fmt(x) + " (m" + m + ")";
      pe.children[2].textContent = p === null ? "p ." : "p " + fmt(p);
      pe.classList.toggle("active", x !== null);
      const tile = step && step.s[at] ? D.streams[step.s[at] - 1] : latest;
      pe.classList.toggle("idle", !!tile && (k >= tile.k || n >= tile.n));
    }
    // The skew: what enters row k in this cycle and the next ones, read ahead in the steps.
    let feed = [];
    for (let d = 3; d >= 0; d--) {
      const s = steps[lastStep(t + d)];
      if (!s || s.t !== t + d || s.x[k * C] === null) continue;
      const text = "X[" + s.m[k * C] + "][" + k + "]=" + fmt(s.x[k * C]);
      feed.push(d === 0 ? "<span class='next'>" + text + " &#x2192;</span>" : text);
    }
    el("feed-" + k).innerHTML = feed.join(" ");
  }
  for (let n = 0; n < C; n++) {
    const o = el("out-" + n), r = step ? step.out.find((r) => r.n === n) : null;
    o.dataset.m = r ? r.m : "";
    o.dataset.v = r ? fmt(r.value) : "";
    o.textContent = r ? "Y[" + r.m + "][" + n + "]=" + fmt(r.value) : "";
    o.classList.toggle("on", !!r);
  }
  renderAcc(si, step);
  let units_html = "";
  for (const u of units) {
    const parts = [];
    for (const i of D.instructions) {
      if (i.unit !== u) continue;
      const [state, cause] = stateOf(i, t);
      if (state === "busy") parts.push("busy pc " + i.pc);
      if (state === "waiting") parts.push("pc " + i.pc + " waits" + (cause ? " on " + cause : ""));
    }
    units_html += "<div><b>" + u + "</b>: " + (parts.length ? parts.join(", ") : "idle") + "</div>";
  }
  el("units").innerHTML = units_html;
  for (const i of D.instructions) {
    const [state, cause] = stateOf(i, t), row = el("inst-" + i.pc);
    row.className = state;
    row.dataset.state = state;
    row.querySelector(".state").textContent = state + (cause ? " (" + cause + ")" : "");
  }
  el("phase").textContent = phase();
  location.replace("#t=" + t);
}

// Fill, full rate or drain of the stream whose results land now (sim/README.md formulas).
function phase() {
  for (const s of [...D.streams].reverse()) {
    const lo = Math.min(s.m, s.n), hi = Math.max(s.m, s.n), r = R;
    const last = s.start + s.m + s.n + r - 2;
    if (t < s.start || t > last) continue;
    if (t <= s.start + r + lo - 2) return "matmul pc " + s.pc + ": fill";
    if (t <= s.start + r + hi - 1) return "matmul pc " + s.pc + ": full rate";
    return "matmul pc " + s.pc + ": drain";
  }
  return "";
}

// Accumulator rows as results land (at most the first 16 rows).
function renderAcc(si, step) {
  const acc = new Map();
  let rows = 0;
  for (let i = 0; i <= si; i++) {
    for (const r of steps[i].out) {
      const key = r.acc_row + "," + r.n;
      acc.set(key, r.added ? (acc.get(key) || 0) + r.value : r.value);
      rows = Math.max(rows, r.acc_row + 1);
    }
  }
  let html = "<tr><th></th>";
  for (let n = 0; n < C; n++) html += "<th>" + n + "</th>";
  html += "</tr>";
  for (let a = 0; a < Math.min(rows, 16); a++) {
    html += "<tr><th>" + a + "</th>";
    for (let n = 0; n < C; n++) {
      const fresh = step && step.out.some((r) => r.acc_row === a && r.n === n);
      const v = acc.get(a + "," + n);
      html += "<td" + (fresh ? " class='fresh'" : "") + ">" +
              (v === undefined ? "" : fmt(v)) + "</td>";
    }
    html += "</tr>";
  }
  el("acc").innerHTML = html;
}

function go(c) { t = Math.max(0, Math.min(T - 1, c)); render(); }
function pause() {
  if (!timer) return;
  clearInterval(timer);
  timer = null;
  el("play").innerHTML = "&#x25B6; play";
}
function play() {
  if (timer) return pause();
  el("play").innerHTML = "&#x2016; pause";
  timer = setInterval(() => { if (t >= T - 1) pause(); else go(t + 1); }, +el("speed").value);
}
// The next cycle after t in which an instruction event happens or the array holds data.
function nextChange() {
  let best = T - 1;
  for (const i of D.instructions) {
    for (const c of [i.issue, i.take, i.start, i.finish]) {
      if (c !== undefined && c > t && c < best) best = c;
    }
  }
  const s = steps[lastStep(t) + 1];
  if (s && s.t < best) best = s.t;
  return best;
}

build();
el("first").onclick = () => { pause(); go(0); };
el("prev").onclick = () => { pause(); go(t - 1); };
el("next").onclick = () => { pause(); go(t + 1); };
el("nextchange").onclick = () => { pause(); go(nextChange()); };
el("play").onclick = play;
el("speed").onchange = () => { if (timer) { pause(); play(); } };
el("scrub").oninput = (e) => { pause(); go(+e.target.value); };
document.addEventListener("keydown", (e) => {
  if (e.key === "ArrowRight") { pause(); go(t + 1); }
  else if (e.key === "ArrowLeft") { pause(); go(t - 1); }
  else if (e.key === " ") { e.preventDefault(); play(); }
});
const start = /#t=(\d+)/.exec(location.hash);
go(start ? +start[1] : (D.streams.length ? D.streams[0].start : 0));
</script>
</body>
</html>
)HTML";

}  // namespace

std::string explain_html(const nlohmann::json& data) {
  // "</" would end the script element the data sits in; "<\/" is the same JSON string.
  std::string json = data.dump();
  std::string safe;
  safe.reserve(json.size());
  for (std::size_t i = 0; i < json.size(); ++i) {
    safe += json[i];
    if (json[i] == '<' && i + 1 < json.size() && json[i + 1] == '/') safe += '\\';
  }
  return kHead + safe + kTail;
}

}  // namespace tpu
