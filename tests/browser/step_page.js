// Drives the explain page in headless chromium through the DevTools protocol on a pipe (no
// network, no packages): opens PAGE at cycle START, presses the page's own buttons as listed
// in STEPS (comma-separated: next, prev, nextchange), reads what the page shows after each
// press and saves a screenshot after the last one. Prints one JSON line per press:
//   {"press", "cycle", "pe00": {x, m, p, w}, "out": [{m, v} per column], "states": {pc: state}}
// Used by tests/browser_test.cc.
//
//   node step_page.js PAGE START STEPS SCREENSHOT
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [page, start, steps, screenshot] = process.argv.slice(2);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tpusim-chromium-"));
const chrome = spawn("chromium", ["--headless", "--no-sandbox", "--disable-gpu",
  "--window-size=1400,1100", "--remote-debugging-pipe", "--user-data-dir=" + profile,
  "about:blank"], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });
const toChrome = chrome.stdio[3], fromChrome = chrome.stdio[4];

let nextId = 1, buffer = "";
const pending = new Map();
fromChrome.on("data", (chunk) => {
  buffer += chunk.toString("utf8");
  let end;
  while ((end = buffer.indexOf("\0")) >= 0) {
    const message = JSON.parse(buffer.slice(0, end));
    buffer = buffer.slice(end + 1);
    const waiter = pending.get(message.id);
    if (!waiter) continue;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(JSON.stringify(message.error)));
    else waiter.resolve(message.result);
  }
});

function send(method, params, sessionId) {
  const id = nextId++;
  toChrome.write(JSON.stringify({ id, method, params, sessionId }) + "\0");
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

async function evaluate(session, expression) {
  const r = await send("Runtime.evaluate", { expression, returnByValue: true }, session);
  if (r.exceptionDetails) throw new Error(JSON.stringify(r.exceptionDetails));
  return r.result.value;
}

// What the page shows now, read from its elements.
const READ = `(() => {
  const pe = document.getElementById("pe-0-0").dataset;
  const out = [];
  for (let n = 0; document.getElementById("out-" + n); n++) {
    const o = document.getElementById("out-" + n).dataset;
    out.push({ m: o.m, v: o.v });
  }
  const states = {};
  for (const row of document.querySelectorAll("#program tr")) states[row.id.slice(5)] = row.dataset.state;
  return { cycle: document.getElementById("cycle").textContent, pe00: { x: pe.x, m: pe.m, p: pe.p, w: pe.w },
           out, states };
})()`;

async function main() {
  const { targetId } = await send("Target.createTarget",
      { url: "file://" + page + "#t=" + start });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  for (let i = 0; i < 100; i++) {
    if (await evaluate(sessionId, "document.readyState === 'complete' && !!document.getElementById('pe-0-0')")) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(JSON.stringify({ press: "open", ...(await evaluate(sessionId, READ)) }));
  for (const press of steps.split(",")) {
    await evaluate(sessionId, `document.getElementById(${JSON.stringify(press)}).click()`);
    console.log(JSON.stringify({ press, ...(await evaluate(sessionId, READ)) }));
  }
  const shot = await send("Page.captureScreenshot", { format: "png" }, sessionId);
  fs.writeFileSync(screenshot, Buffer.from(shot.data, "base64"));
}

// Chromium is asked to close (Browser.close) so that it shuts its helper processes down before it
// exits; a kill after 5 s is the fallback. The profile goes once it has exited; removal retries
// in case a helper still writes (ENOTEMPTY seen in CI), and a profile left behind is a warning,
// not a failed run.
chrome.on("exit", () => {
  try {
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
  } catch (e) {
    console.error("warning: could not remove " + profile + ": " + e.code);
  }
});
function close() {
  setTimeout(() => chrome.kill(), 5000).unref();
  send("Browser.close").catch(() => chrome.kill());
}
main().then(close, (e) => { console.error(String(e)); process.exitCode = 1; close(); });
