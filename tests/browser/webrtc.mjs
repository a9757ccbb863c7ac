// Plays camloop's WebRTC in headless Chromium, as the real clients do, and
// reports what each case saw.
//
//   node tests/browser/webrtc.mjs CASES.json
//
// CASES.json (written by tests/webrtc_browser.rs):
//
//   {"originPort": 40123,          // this script's own page server
//    "cases": [{"name": "...", "kind": "...", "chain": "...", ...}, ...]}
//
// One browser runs every case. Cases of one `chain` run one after the
// other; chains run side by side (the lifecycle cases, which wait for the
// server to free peers, have their own server and chain).
//
// Kinds:
//   client      tests/browser/webrtc-clients.html?client=C&stream=S: a real
//               client's exchange. origin "same" serves the page at
//               BASE/__webrtc_test/client.html (playwright fulfils that one
//               URL, every other request goes to camloop), "cross" from
//               this script's server at http://127.0.0.1:originPort/.
//               Waits (bounded) for minFrames rendered frames.
//   page        camloop's own page at BASE/QUERY: waits for the default
//               tile's WebRTC frames (after clicking its toggle if
//               `toggle`), and for the capture → render age it shows.
//               `toggleBack`: then its toggle again, back to MJPEG.
//               `unauthorizedPost`: that path is also POSTed from node
//               without a token, and its status reported.
//   closed-tab  a plain WHEP client plays, its tab is closed, and /state is
//               polled (every 500 ms, up to 45 s) until the peer is gone.
//   crashed-tab the same, but the tab's renderer crashes (chrome://crash)
//               instead of closing: nothing tells the server, whose ICE
//               consent check must notice.
//   delete      a plain WHEP client plays, DELETEs its session, and /state
//               is read once, right after the DELETE's answer.
//   unanswered  a camera-streamer "request" whose offer is never answered;
//               /state polled (up to 45 s) until the peer is gone.
//
// Every wait is bounded; a case that does not get there reports what it
// saw (frames, the ICE candidates Chromium gathered, states, errors), and
// the Rust test's assertion says what was missing. Prints one JSON line,
// {"cases": {NAME: {...}}}, and exits 0; exits 1 only when the run itself
// breaks (no browser, a thrown error), with the reason on stderr.

import { chromium } from "playwright-core";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM_PATH = process.env.CHROMIUM || "/usr/bin/chromium";
const OVERALL_TIMEOUT_MS = 280_000;
// Waiting for a picture: ICE, DTLS and the first IDR take well under a
// second on loopback; this is hang protection for a loaded machine.
const PLAY_TIMEOUT_MS = 25_000;
// How long a freed peer may take to leave /state (ICE consent fails ~15 s
// after a tab closes; an unanswered offer is freed after 15 s).
const FREE_TIMEOUT_MS = 45_000;
// A client page with no ICE candidate this long after it loaded has none to come.
const NO_CANDIDATE_MS = 5_000;
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Tabs in the background keep rendering: several cases play at once.
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];

async function main() {
  const [configPath] = process.argv.slice(2);
  if (!configPath) {
    console.error("usage: node webrtc.mjs CASES.json");
    process.exit(2);
  }
  const config = JSON.parse(await readFile(configPath, "utf8"));
  const clientHtml = await readFile(path.join(HERE, "webrtc-clients.html"));

  // The second origin: serves the client page, nothing else.
  const origin = createServer((req, res) => {
    if (new URL(req.url, "http://x").pathname === "/client.html") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(clientHtml);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve, reject) => {
    origin.once("error", reject);
    origin.listen(config.originPort, "127.0.0.1", resolve);
  });

  const profileDir = await mkdtemp(path.join(tmpdir(), "camloop-chromium-"));
  let context;
  const cleanUp = async () => {
    const closing = context;
    context = undefined;
    if (closing) await closing.close().catch(() => {});
    origin.close();
    await rm(profileDir, { recursive: true, force: true }).catch(() => {});
  };
  const timer = setTimeout(async () => {
    console.error(`webrtc.mjs: gave up after ${OVERALL_TIMEOUT_MS / 1000} s`);
    await cleanUp();
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);

  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 800, height: 900 },
    });
    // The same-origin client page: one URL on camloop's origin, fulfilled here.
    await context.route(/\/__webrtc_test\/client\.html(\?|$)/, (route) =>
      route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: clientHtml }),
    );
    const env = { context, originPort: config.originPort };
    const chains = new Map();
    for (const spec of config.cases) {
      const chain = spec.chain ?? "main";
      if (!chains.has(chain)) chains.set(chain, []);
      chains.get(chain).push(spec);
    }
    const results = {};
    await Promise.all(
      [...chains.values()].map(async (specs) => {
        for (const spec of specs) {
          const started = Date.now();
          try {
            results[spec.name] = await runCase(env, spec);
          } catch (error) {
            results[spec.name] = { error: `case failed: ${error.message.split("\n")[0]}` };
          }
          results[spec.name].seconds = (Date.now() - started) / 1000;
        }
      }),
    );
    console.log(JSON.stringify({ cases: results }));
  } finally {
    clearTimeout(timer);
    await cleanUp();
  }
}

function runCase(env, spec) {
  switch (spec.kind) {
    case "client":
      return clientCase(env, spec);
    case "page":
      return pageCase(env, spec);
    case "closed-tab":
    case "crashed-tab":
      return closedTabCase(env, { ...spec, crash: spec.kind === "crashed-tab" });
    case "delete":
      return deleteCase(env, spec);
    case "unanswered":
      return unansweredCase(env, spec);
    default:
      throw new Error(`unknown kind ${spec.kind}`);
  }
}

// A new tab whose errors and requests to camloop are kept: each request as
// "METHOD /path content-type -> status" (content-type "-" when none).
async function newTab(env, base) {
  const page = await env.context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  const exchange = [];
  const pending = [];
  // In the order the page made them (numbered when sent, not when
  // answered). Recorded at the response's head: a fetch whose body the
  // page never reads (Mainsail reads no candidate reply) never "finishes".
  const sentAt = new Map();
  let sent = 0;
  let answered = 0;
  page.on("request", (request) => sentAt.set(request, sent++));
  page.on("response", (response) => {
    answered += 1;
    pending.push(record(response.request(), response));
  });
  page.on("requestfailed", (request) => {
    answered += 1;
    pending.push(record(request, null));
  });
  // A request is recorded once: a keepalive fetch (the page's DELETE) can
  // report its response and then fail when the page drops its body.
  const recorded = new Set();
  async function record(request, response) {
    if (recorded.has(request)) return;
    recorded.add(request);
    const url = new URL(request.url());
    if (url.origin !== base || url.pathname.startsWith("/__webrtc_test/")) return;
    const type = (await request.headerValue("content-type").catch(() => null)) ?? "-";
    exchange.push({
      at: sentAt.get(request) ?? Infinity,
      line: `${request.method()} ${url.pathname} ${type.split(";")[0]} -> ${response ? response.status() : "failed"}`,
    });
  }
  // Before the tab closes: every request sent has its answer (bounded).
  const settle = async () => {
    const deadline = Date.now() + 5000;
    while (answered < sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await Promise.all(pending);
  };
  const log = async () => {
    await Promise.all(pending);
    return exchange.sort((a, b) => a.at - b.at).map((entry) => entry.line);
  };
  return { page, errors, log, settle };
}

// The default camera's WebRTC numbers from /state, read from node.
async function peers(base, query = "") {
  const state = await (await fetch(`${base}/state${query}`)).json();
  const camera = state.cameras?.[0] ?? {};
  return {
    connecting: camera.webrtc_peers_connecting,
    connected: camera.webrtc_peers_connected,
  };
}
const total = (p) => (p.connecting ?? 0) + (p.connected ?? 0);

// Polls /state until the default camera has no peer left; the ms it took,
// or null after FREE_TIMEOUT_MS.
async function waitUntilFreed(base, since) {
  while (Date.now() - since < FREE_TIMEOUT_MS) {
    const now = await peers(base).catch(() => null);
    if (now && now.connecting === 0 && now.connected === 0) return Date.now() - since;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return null;
}

function clientUrl(env, spec, client) {
  const query = new URLSearchParams({ client, stream: spec.stream });
  if (spec.stun) query.set("stun", "1");
  return spec.origin === "cross"
    ? `http://127.0.0.1:${env.originPort}/client.html?${query}`
    : `${spec.base}/__webrtc_test/client.html?${query}`;
}

// What the client page knows, with its video receiver's statistics
// (inbound-rtp: what arrived, was lost, decoded, and which repairs it
// asked for), which say where a stalled picture stalled.
const clientState = (page) =>
  page.evaluate(async () => {
    const { kind, frames, width, height, candidates, gathering, connection, error, notes, pc } = window.client;
    let inbound = null;
    try {
      (await pc?.getStats())?.forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "video") {
          const keys = ["packetsReceived", "packetsLost", "bytesReceived", "framesReceived", "framesDecoded",
            "framesDropped", "keyFramesDecoded", "freezeCount", "nackCount", "pliCount", "firCount", "jitter"];
          inbound = Object.fromEntries(keys.map((key) => [key, report[key] ?? null]));
        }
      });
    } catch (e) {
      inbound = { error: String(e) };
    }
    return { kind, frames, width, height, candidates, gathering, connection, error, notes, inbound };
  });

// Opens a client page and waits (bounded) until it rendered `minFrames`
// frames or reported an error.
async function play(env, spec, client) {
  const tab = await newTab(env, spec.base);
  await tab.page.goto(clientUrl(env, spec, client), { waitUntil: "domcontentloaded" });
  const minFrames = spec.minFrames ?? 60;
  // Also stops when Chromium has gathered no candidate at all after
  // NO_CANDIDATE_MS (normally the first comes within milliseconds): with no
  // local address it cannot send one connectivity check — a machine whose
  // only interface is loopback, where gathering never even completes — and
  // waiting longer changes nothing. The report's `candidates: 0` says so.
  await tab.page
    .waitForFunction(
      ([n, noCandidateMs]) =>
        window.client.frames >= n ||
        window.client.error !== null ||
        (window.client.candidates === 0 && performance.now() > noCandidateMs),
      [minFrames, NO_CANDIDATE_MS],
      { timeout: PLAY_TIMEOUT_MS, polling: 100 },
    )
    .catch(() => {});
  return tab;
}

async function clientCase(env, spec) {
  const tab = await play(env, spec, spec.client);
  const seen = await clientState(tab.page);
  const during = await peers(spec.base, spec.stateQuery ?? "").catch((error) => ({ error: String(error) }));
  const finished = await tab.page.evaluate(() => window.client.finish()).catch((error) => String(error));
  await tab.settle();
  await tab.page.close();
  return { ...seen, peersWhilePlaying: during, finish: finished ?? null, exchange: await tab.log(), pageErrors: tab.errors };
}

async function pageCase(env, spec) {
  const tab = await newTab(env, spec.base);
  const { page } = tab;
  await page.goto(`${spec.base}/${spec.query ?? ""}`, { waitUntil: "domcontentloaded" });
  const result = {};
  // The page builds its tiles from its first /state and tells each live
  // view its codec at the same time: from then on the transport is decided.
  result.tilesBuilt = await page
    .waitForSelector("#tile-default[data-camera]", { state: "attached", timeout: PLAY_TIMEOUT_MS })
    .then(() => true)
    .catch(() => false);
  result.transportAtStart = await page.$eval("#tile-default", (tile) => tile.dataset.transport ?? "");
  result.webrtcAtStart = await page.$eval("#tile-default", (tile) => tile.dataset.webrtc ?? "");
  if (spec.toggle) await page.click("#webrtc-toggle");
  const minFrames = spec.minFrames ?? 60;
  await page
    .waitForFunction(
      (n) => {
        const tile = document.querySelector("#tile-default");
        return Number(tile.dataset.frames ?? 0) >= n || tile.dataset.webrtc === "failed";
      },
      minFrames,
      { timeout: PLAY_TIMEOUT_MS, polling: 100 },
    )
    .catch(() => {});
  // The age shows from the first frame on, refreshed twice a second.
  await page
    .waitForFunction(() => /^age -?\d+ ms$/.test(document.querySelector("#webrtc-age").textContent.trim()), null, {
      timeout: 5000,
      polling: 100,
    })
    .catch(() => {});
  Object.assign(
    result,
    await page.evaluate(() => {
      const tile = document.querySelector("#tile-default");
      const video = document.querySelector("#live-video");
      return {
        transport: tile.dataset.transport ?? "",
        webrtc: tile.dataset.webrtc ?? "",
        frames: Number(tile.dataset.frames ?? 0),
        width: video.videoWidth,
        height: video.videoHeight,
        videoShown: !video.hidden,
        imageShown: !document.querySelector("#live").hidden,
        age: document.querySelector("#webrtc-age").textContent.trim(),
        notice: document.querySelector("#webrtc-notice").hidden
          ? ""
          : document.querySelector("#webrtc-notice").textContent.trim(),
        tokenRequiredShown: !document.querySelector("#token-required").hidden,
      };
    }),
  );
  result.peersWhilePlaying = await peers(spec.base, spec.stateQuery ?? "").catch((error) => ({ error: String(error) }));
  if (spec.toggleBack) {
    // Back to MJPEG: the page DELETEs its session, then shows the image.
    await page.click("#webrtc-toggle");
    await page
      .waitForFunction(() => document.querySelector("#live").naturalWidth > 0 && !document.querySelector("#live").hidden, null, {
        timeout: PLAY_TIMEOUT_MS,
        polling: 100,
      })
      .catch(() => {});
    await tab.settle();
    result.transportAfterToggleBack = await page.$eval("#tile-default", (tile) => tile.dataset.transport ?? "");
    result.peersAfterToggleBack = await peers(spec.base, spec.stateQuery ?? "").catch((error) => ({ error: String(error) }));
  }
  if (spec.unauthorizedPost) {
    const reply = await fetch(`${spec.base}${spec.unauthorizedPost}`, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: "v=0\r\n",
    });
    result.unauthorizedStatus = reply.status;
  }
  await tab.settle();
  await page.close();
  result.exchange = await tab.log();
  result.pageErrors = tab.errors;
  return result;
}

async function closedTabCase(env, spec) {
  const before = await peers(spec.base);
  const tab = await play(env, spec, "whep");
  const seen = await clientState(tab.page);
  const during = await peers(spec.base);
  const closedAt = Date.now();
  let crashed = null;
  if (spec.crash) {
    // The tab's renderer dies: no DTLS close alert, no RTCP BYE, the
    // server only notices that ICE consent stops.
    const crash = new Promise((resolve) => tab.page.once("crash", () => resolve(true)));
    await tab.page.goto("chrome://crash", { timeout: 5000 }).catch(() => {});
    crashed = await Promise.race([crash, new Promise((resolve) => setTimeout(() => resolve(false), 5000))]);
  } else {
    await tab.page.close();
  }
  // Nothing to wait for when no peer ever showed (the caller says why).
  const freedAfterMs = total(during) > 0 ? await waitUntilFreed(spec.base, closedAt) : null;
  if (spec.crash) await tab.page.close().catch(() => {});
  return {
    crashed, ...seen, peersBefore: before, peersWhilePlaying: during, freedAfterMs, peersAfter: await peers(spec.base) };
}

async function deleteCase(env, spec) {
  const before = await peers(spec.base);
  const tab = await play(env, spec, "whep");
  const seen = await clientState(tab.page);
  const during = await peers(spec.base);
  // DELETE the session, its peer connection left open (a closed one would
  // free the peer by itself); the state is read as soon as the DELETE was
  // answered.
  const deleteStatus = await tab.page.evaluate(() => window.client.finish(true)).catch((error) => String(error));
  const afterDelete = await peers(spec.base);
  await tab.settle();
  await tab.page.close();
  return { ...seen, peersBefore: before, peersWhilePlaying: during, deleteStatus, peersAfterDelete: afterDelete, exchange: await tab.log() };
}

async function unansweredCase(env, spec) {
  const before = await peers(spec.base);
  // As Mainsail sends it: no Content-Type (text/plain), iceServers null.
  const sentAt = Date.now();
  const reply = await fetch(`${spec.base}/webrtc`, {
    method: "POST",
    headers: { "Content-Type": "text/plain;charset=UTF-8" },
    body: JSON.stringify({ type: "request", iceServers: null }),
  });
  const text = await reply.text();
  let body = {};
  try {
    body = JSON.parse(text);
  } catch (error) {
    body = { unparsed: text };
  }
  const afterRequest = await peers(spec.base);
  const freedAfterMs = total(afterRequest) > 0 ? await waitUntilFreed(spec.base, sentAt) : null;
  return {
    peersBefore: before,
    status: reply.status,
    type: body.type ?? null,
    hasSdp: typeof body.sdp === "string" && body.sdp.startsWith("v=0"),
    id: body.id ?? null,
    peersAfterRequest: afterRequest,
    freedAfterMs,
    total: total(afterRequest),
  };
}

main().catch((error) => {
  console.error(`webrtc.mjs: ${error.message}`);
  process.exit(1);
});
