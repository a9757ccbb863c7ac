// Loads camloop's web page in a real browser and reports what it saw.
//
//   node tests/browser/shot.mjs BASE_URL OUT_DIR [--query=?token=T]
//        [--basic=USER:PASSWORD] [--expect=token-required]
//
// --query is appended to the page URL (`/?token=T`); --basic gives the
// browser HTTP Basic credentials for the server (playwright's
// httpCredentials: it answers the 401 challenge as a person would at the
// login prompt); --expect=token-required only checks that the page shows
// its token-required state (#token-required visible) and prints
// {"tokenRequired":true,"status":401,...}; --expect=401-in-page loads the
// page normally but answers the page's /state and /capture requests with
// camloop's 401 (playwright's page.route), then checks that the page shows
// its token-required state and that Capture says so instead of a JSON error.
//
// --expect=controls loads the page, waits for its controls panel, moves the
// brightness slider to its maximum (End key) and the contrast slider to its
// minimum (Home key), as a person with a keyboard would, and waits until
// each slider's value shows the server's read-back answer; it prints
// {"brightness":"100","contrast":"0",...}. The caller checks /controls.
//
// --expect=cameras is for a server with several cameras: it waits for the
// page's camera tiles, then until every live tile's picture has changed
// (drawn into a canvas and compared, so what the <img> shows counts, not
// what arrived) and every snapshot tile has shown at least three snapshots
// with a change of picture and of X-Frame between them, lists the paths
// the page asked for, reads the server's per-camera
// stream_viewers from /state (from node, not through the browser's
// connections), clicks the last tile's Capture and waits for its answer:
//
//   {"tiles":"cam0:live cam1:live ... cam5:snapshot",
//    "streams":"/cam/cam1/stream.mjpg ... /stream.mjpg",
//    "snapshots":"/cam/cam4/snapshot.jpg /cam/cam5/snapshot.jpg",
//    "liveMoved":"cam0 cam1 cam2 cam3","snapshotsRefreshed":"cam4 cam5",
//    "viewers":"cam0:1 ... cam5:0","captureCamera":"cam5",
//    "captured":"pic2.cam5.jpg",...}
//
// A tile that never moves or refreshes is left out of its list (after a
// step timeout) instead of failing the run, so the caller's assertion names it.
//
// Drives Debian's system chromium (no browser download) through
// playwright-core: opens BASE_URL/, waits for the live MJPEG image to show a
// frame, reads the frame counter and screenshots the image twice at least
// 1 s apart, clicks Capture and waits for the saved file name. On success it
// prints one JSON line on stdout and exits 0:
//
//   {"first":120,"second":151,"frameChanged":true,"imageChanged":true,
//    "captured":"pic2.jpg","imgWidth":640,"imgHeight":480,"screenshots":[...]}
//
// On any failure it prints the reason on stderr and exits 1; with bad
// arguments, 2. The browser is always closed, and the whole run is capped at
// OVERALL_TIMEOUT_MS. Judging the result (frames differ, file exists on disk)
// is left to the caller, which knows what the server should have done.

import { chromium } from "playwright-core";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

const CHROMIUM_PATH = process.env.CHROMIUM || "/usr/bin/chromium";
const OVERALL_TIMEOUT_MS = 60_000;
// Per step; several steps must fit in the overall budget.
const STEP_TIMEOUT_MS = 15_000;
// The page polls /state once a second, so the counter can only move that often.
const SAMPLE_GAP_MS = 1_000;

// Everything a test machine might otherwise do in the background (updates,
// sync, QUIC probes) is switched off, so the run needs no network but the
// server's. `--no-sandbox` because CI runs as root, where the sandbox refuses
// to start.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function main() {
  const [baseArg, outDir, ...flags] = process.argv.slice(2);
  const options = {};
  for (const flag of flags) {
    const match = flag.match(/^--(query|basic|expect)=(.*)$/s);
    if (!match) {
      console.error(`shot.mjs: unknown argument ${flag}`);
      process.exit(2);
    }
    options[match[1]] = match[2];
  }
  if (!baseArg || !outDir) {
    console.error("usage: node shot.mjs BASE_URL OUT_DIR [--query=Q] [--basic=U:P] [--expect=token-required]");
    process.exit(2);
  }
  const base = baseArg.replace(/\/+$/, "");
  await mkdir(outDir, { recursive: true });

  // A fresh profile every run: no cache or state from an earlier run can
  // make a broken server look fine. Playwright passes it as --user-data-dir.
  const profileDir = await mkdtemp(path.join(tmpdir(), "camloop-chromium-"));
  let context;
  // Whatever happens below, the browser is closed and the profile removed,
  // including when the overall timeout fires first.
  const cleanUp = async () => {
    const closing = context;
    context = undefined;
    if (closing) await closing.close().catch(() => {});
    await rm(profileDir, { recursive: true, force: true }).catch(() => {});
  };
  const timer = setTimeout(async () => {
    console.error(`shot.mjs: gave up after ${OVERALL_TIMEOUT_MS / 1000} s`);
    await cleanUp();
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);

  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 800, height: 1000 },
      ...(options.basic && {
        httpCredentials: {
          username: options.basic.slice(0, options.basic.indexOf(":")),
          password: options.basic.slice(options.basic.indexOf(":") + 1),
        },
      }),
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    // Page errors explain most failures; keep them for the error message.
    const pageErrors = [];
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error") pageErrors.push(message.text());
    });

    try {
      const query = options.query ?? "";
      const result =
        options.expect === "token-required"
          ? await lookForTokenRequired(page, base, query, outDir)
          : options.expect === "401-in-page"
            ? await lookFor401InPage(page, base, query, outDir)
            : options.expect === "controls"
              ? await moveControls(page, base, query, outDir)
              : options.expect === "cameras"
                ? await lookAtCameras(page, base, query, outDir)
                : await look(page, base, query, outDir);
      console.log(JSON.stringify(result));
    } catch (error) {
      if (pageErrors.length) error.message += `\npage errors:\n  ${summarize(pageErrors).join("\n  ")}`;
      throw error;
    }
  } finally {
    clearTimeout(timer);
    await cleanUp();
  }
}

// Opens the page with a wrong or missing token: it must say so.
async function lookForTokenRequired(page, base, query, outDir) {
  const response = await page.goto(`${base}/${query}`, { waitUntil: "domcontentloaded" });
  await step("the page shows that a token is required", () =>
    page.waitForSelector("#token-required", { state: "visible" }),
  );
  const text = (await page.textContent("#token-required")).trim();
  await page.screenshot({ path: path.join(outDir, "token-required.png") });
  return {
    tokenRequired: true,
    status: response ? response.status() : 0,
    text,
    screenshots: [path.join(outDir, "token-required.png")],
  };
}

// The page loads, then its requests start getting 401s (as when the
// server's token changed under an open page).
async function lookFor401InPage(page, base, query, outDir) {
  const refuse = (route) =>
    route.fulfill({
      status: 401,
      contentType: "application/json",
      headers: { "WWW-Authenticate": 'Bearer realm="camloop"' },
      body: '{"error":"auth: token required"}',
    });
  await page.route(/\/(state|capture)(\?|$)/, refuse);
  await page.goto(`${base}/${query}`, { waitUntil: "domcontentloaded" });
  await step("the page shows that a token is required", () =>
    page.waitForSelector("#token-required", { state: "visible" }),
  );
  await page.click("#capture");
  await step("Capture reports its failure", () =>
    page.waitForFunction(() => document.querySelector("#capture-result").classList.contains("error")),
  );
  const captureText = (await page.textContent("#capture-result")).trim();
  await page.screenshot({ path: path.join(outDir, "401-in-page.png") });
  return {
    tokenRequired: await page.isVisible("#token-required"),
    captureText,
    camera: (await page.textContent("#camera")).trim(),
    screenshots: [path.join(outDir, "401-in-page.png")],
  };
}

// Moves two sliders of the controls panel with the keyboard and waits for
// the read-back values the page shows after the server answered.
async function moveControls(page, base, query, outDir) {
  const answered = [];
  page.on("response", (response) => {
    if (new URL(response.url()).pathname.endsWith("/controls") && response.request().method() === "POST") {
      answered.push(response.status());
    }
  });
  await page.goto(`${base}/${query}`, { waitUntil: "domcontentloaded" });
  await step("the controls panel shows", () => page.waitForSelector("#controls", { state: "visible" }));
  const names = await page.$$eval("#control-list input[type=range]", (sliders) =>
    sliders.map((slider) => slider.id.replace(/^control-/, "")),
  );
  const move = async (name, key, expected) => {
    await page.focus(`#control-${name}`);
    await page.keyboard.press(key);
    await step(`the page shows ${name}=${expected}`, () =>
      page.waitForFunction(
        ([name, expected]) => document.querySelector(`#control-${name}-value`).textContent.trim() === expected,
        [name, expected],
      ),
    );
  };
  await move("brightness", "End", "100");
  await move("contrast", "Home", "0");
  // The read-back lands after the POST's answer; wait for both answers.
  await step("both POSTs were answered", () => waitUntil(() => answered.length >= 2));
  await page.screenshot({ path: path.join(outDir, "controls.png") });
  return {
    names: names.join(" "),
    brightness: (await page.textContent("#control-brightness-value")).trim(),
    contrast: (await page.textContent("#control-contrast-value")).trim(),
    postStatuses: answered.join(" "),
    controlResult: (await page.textContent("#control-result")).trim(),
    tokenRequiredShown: await page.isVisible("#token-required"),
    screenshots: [path.join(outDir, "controls.png")],
  };
}

// The page's camera tiles: live ones must move, snapshot ones must refresh,
// and the last tile's Capture must save that camera's file.
async function lookAtCameras(page, base, query, outDir) {
  const requested = new Set();
  page.on("request", (request) => requested.add(new URL(request.url()).pathname));
  await page.goto(`${base}/${query}`, { waitUntil: "domcontentloaded" });
  // The page builds all tiles at once, from its first /state.
  await step("the page shows several camera tiles", () =>
    page.waitForFunction(() => document.querySelectorAll(".tile[data-camera]").length > 1),
  );
  const tiles = await page.$$eval(".tile[data-camera]", (elements) =>
    elements.map((tile) => ({ name: tile.dataset.camera, view: tile.dataset.view })),
  );
  const live = tiles.filter((tile) => tile.view === "live").map((tile) => tile.name);
  const snapshots = tiles.filter((tile) => tile.view === "snapshot").map((tile) => tile.name);

  // A small digest of what the tile's <img> shows now, or null before its
  // first picture. Runs in the page.
  const digestSource = (name) => {
    const img = document.querySelector(`.tile[data-camera="${name}"] img.view`);
    if (!img || !img.naturalWidth) return null;
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(img, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let hash = 2166136261;
    for (let i = 0; i < pixels.length; i += 4) {
      hash = Math.imul(hash ^ pixels[i] ^ (pixels[i + 1] << 8) ^ (pixels[i + 2] << 16), 16777619);
    }
    return `${canvas.width}x${canvas.height}:${hash >>> 0}`;
  };
  const digest = (name) => page.evaluate(`(${digestSource})(${JSON.stringify(name)})`);
  // Waits until `condition(name)` (a page function) holds; false on timeout.
  const holds = (condition, arg) =>
    page
      .waitForFunction(condition, arg, { polling: 100 })
      .then(() => true)
      .catch(() => false);

  // Every live tile shows a picture, then a different one.
  const firstDigests = {};
  for (const name of live) {
    await step(`live tile ${name} shows a picture`, () =>
      page.waitForFunction(`(${digestSource})(${JSON.stringify(name)}) !== null`, null, { polling: 100 }),
    );
    firstDigests[name] = await digest(name);
  }
  const liveMoved = [];
  for (const name of live) {
    const moved = await holds(
      `(${digestSource})(${JSON.stringify(name)}) !== ${JSON.stringify(firstDigests[name])}`,
    );
    if (moved) liveMoved.push(name);
  }

  // Every snapshot tile shows a first snapshot, then at least two more
  // (three in all, at least); the picture and its frame number change.
  const snapshotsRefreshed = [];
  const snapshotLoads = [];
  const tileSource = (name) => `document.querySelector(${JSON.stringify(`.tile[data-camera="${name}"]`)})`;
  for (const name of snapshots) {
    const loads = `Number(${tileSource(name)}.dataset.loads ?? 0)`;
    const frame = `Number(${tileSource(name)}.dataset.frame)`;
    const digestNow = `(${digestSource})(${JSON.stringify(name)})`;
    const shown = await holds(`${loads} >= 1`);
    // The count, the frame and the picture read together, in one turn of the page.
    const before = shown ? await page.evaluate(`[${loads}, ${frame}, ${digestNow}]`) : [0, 0, null];
    const reloaded = shown && (await holds(`${loads} >= ${Math.max(3, before[0] + 2)}`));
    const after = reloaded ? await page.evaluate(`[${loads}, ${frame}, ${digestNow}]`) : [0, 0, null];
    if (before[2] !== null && after[2] !== null && after[2] !== before[2] && after[1] > before[1]) {
      snapshotsRefreshed.push(name);
    }
    snapshotLoads.push(`${name}:${JSON.stringify(before)}->${JSON.stringify(after)}`);
  }

  // Which paths the page asked for: a stream each for the live tiles,
  // snapshots for the others.
  const asked = (suffix) => [...requested].filter((p) => p.endsWith(suffix)).sort().join(" ");

  // What the server sees: which cameras have a stream viewer. Asked from
  // node, so this request takes none of the browser's connections.
  const state = await (await fetch(`${base}/state${query}`)).json();
  const viewers = state.cameras.map((camera) => `${camera.name}:${camera.stream_viewers}`);

  await page.screenshot({ path: path.join(outDir, "cameras.png"), fullPage: true });

  const captureCamera = tiles[tiles.length - 1].name;
  const tile = `.tile[data-camera="${captureCamera}"]`;
  await page.click(`${tile} .capture`);
  await step(`Capture on ${captureCamera} reports a file name`, () =>
    page.waitForFunction((tile) => {
      const result = document.querySelector(`${tile} .capture-result`);
      return /\.jpe?g\b/i.test(result.textContent) || result.classList.contains("error");
    }, tile),
  );
  const captureText = (await page.textContent(`${tile} .capture-result`)).trim();
  const captured = captureText.match(/^(\S+\.jpe?g)\b/i)?.[1];
  if (!captured) throw new Error(`Capture did not report a file: ${JSON.stringify(captureText)}`);
  // The other tiles' results stay empty: the answer went to its own tile.
  const otherResults = await page.$$eval(
    ".tile[data-camera] .capture-result",
    (results, tile) => results.filter((r) => !r.closest(tile)).map((r) => r.textContent.trim()).join(""),
    tile,
  );

  return {
    tiles: tiles.map((tile) => `${tile.name}:${tile.view}`).join(" "),
    streams: asked("stream.mjpg"),
    snapshots: asked("snapshot.jpg"),
    liveMoved: liveMoved.join(" "),
    snapshotsRefreshed: snapshotsRefreshed.join(" "),
    snapshotLoads: snapshotLoads.join(" "),
    viewers: viewers.join(" "),
    captureCamera,
    captured,
    captureText,
    otherResults,
    tokenRequiredShown: await page.isVisible("#token-required"),
    screenshots: [path.join(outDir, "cameras.png")],
  };
}

// Polls a condition of this script (not of the page) every 50 ms.
async function waitUntil(condition) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function look(page, base, query, outDir) {
  // Only DOM content: the `load` event never fires, because the MJPEG image
  // keeps loading for as long as the page is open.
  await page.goto(`${base}/${query}`, { waitUntil: "domcontentloaded" });

  await step("the live image shows a frame", () =>
    page.waitForFunction(() => document.querySelector("#live")?.naturalWidth > 0),
  );
  const size = await page.$eval("#live", (img) => ({ w: img.naturalWidth, h: img.naturalHeight }));

  const frames = () => page.$eval("#frames", (el) => el.textContent.trim());
  await step("the frame counter shows a number", () =>
    page.waitForFunction(() => /^\d+$/.test(document.querySelector("#frames")?.textContent.trim())),
  );
  const live = page.locator("#live");
  const shot = (name) => live.screenshot({ path: path.join(outDir, name) });

  const first = await frames();
  const firstShot = await shot("first.png");
  await page.waitForTimeout(SAMPLE_GAP_MS);
  // The counter comes from a poll; give it a few more polls to move rather
  // than reading it at the same instant it updates. If it never moves,
  // `second` equals `first` and the caller's check fails, as it should.
  await page
    .waitForFunction((before) => document.querySelector("#frames").textContent.trim() !== before, first, {
      timeout: 5 * SAMPLE_GAP_MS,
    })
    .catch(() => {});
  const second = await frames();
  const secondShot = await shot("second.png");

  await page.click("#capture");
  await step("Capture reports a file name", () =>
    page.waitForFunction(() => {
      const result = document.querySelector("#capture-result");
      return /\.jpe?g\b/i.test(result.textContent) || result.classList.contains("error");
    }),
  );
  const captureText = (await page.textContent("#capture-result")).trim();
  const captured = captureText.match(/^(\S+\.jpe?g)\b/i)?.[1];
  if (!captured) throw new Error(`Capture did not report a file: ${JSON.stringify(captureText)}`);
  await page.screenshot({ path: path.join(outDir, "page.png") });
  const tokenRequiredShown = await page.isVisible("#token-required");

  return {
    tokenRequiredShown,
    first: Number(first),
    second: Number(second),
    frameChanged: first !== second,
    imageChanged: !firstShot.equals(secondShot),
    captured,
    captureText,
    imgWidth: size.w,
    imgHeight: size.h,
    screenshots: ["first.png", "second.png", "page.png"].map((name) => path.join(outDir, name)),
  };
}

// Repeated errors (a poll failing every second) once each, with a count.
function summarize(messages, max = 10) {
  const counts = new Map();
  for (const message of messages) counts.set(message, (counts.get(message) ?? 0) + 1);
  return [...counts].slice(0, max).map(([message, n]) => (n > 1 ? `${message} (×${n})` : message));
}

// Runs one waiting step and names it in the error if it times out.
async function step(what, wait) {
  try {
    await wait();
  } catch (error) {
    throw new Error(`waiting until ${what}: ${error.message.split("\n")[0]}`);
  }
}

main().catch((error) => {
  console.error(`shot.mjs: ${error.message}`);
  process.exit(1);
});
