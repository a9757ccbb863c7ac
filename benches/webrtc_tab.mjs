// One Chromium tab watching a camera over WHEP, for benches/webrtc_viewers.sh.
//
//   node benches/webrtc_tab.mjs BASE_URL SECONDS
//
// Drives Debian's system chromium (no browser download) through
// playwright-core (from tests/browser/node_modules, or BROWSER_DIR's): opens BASE_URL/ (same
// origin as /whep, so no CORS), makes a receive-only video transceiver
// that opts in to abs-capture-time (setHeaderExtensionsToNegotiate), posts
// its offer (ICE gathered) to BASE_URL/whep, plays the track in a muted
// <video>, then for SECONDS samples receiver.getSynchronizationSources()
// every 50 ms: each new frame's capture → render age is its `timestamp`
// (when it was rendered) minus its `captureTimestamp` (abs-capture-time).
// At the end it reads inbound-rtp's jitterBufferDelay / EmittedCount and
// the frames decoded, deletes the session and prints one JSON line:
//
//   {"ages":N,"age_p50_ms":..,"age_p99_ms":..,"jitter_buffer_ms":..,
//    "frames_decoded":..,"frames_dropped":..,"first_frame_ms":..}
//
// On failure: the reason on stderr, exit 1. Only BASE_URL is contacted.

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// playwright-core as tests/browser installs it (BROWSER_DIR: another
// checkout's tests/browser, where this one has no node_modules).
const browserDir = process.env.BROWSER_DIR || path.join(here, "../tests/browser");
const require = createRequire(path.join(browserDir, "package.json"));
const { chromium } = require("playwright-core");

const [base, seconds] = process.argv.slice(2);
if (!base || !seconds) {
  console.error("usage: node benches/webrtc_tab.mjs BASE_URL SECONDS");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--autoplay-policy=no-user-gesture-required"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  const result = await page.evaluate(async (ms) => {
    const started = performance.now();
    const pc = new RTCPeerConnection();
    const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    const uri = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
    const extensions = transceiver.getHeaderExtensionsToNegotiate()
      .map((e) => (e.uri === uri ? { ...e, direction: "recvonly" } : e));
    transceiver.setHeaderExtensionsToNegotiate(extensions);
    const video = document.createElement("video");
    video.muted = true;
    video.autoplay = true;
    document.body.appendChild(video);
    let firstFrameMs = null;
    pc.ontrack = (event) => {
      video.srcObject = new MediaStream([event.track]);
      video.requestVideoFrameCallback(() => { firstFrameMs = performance.now() - started; });
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
      setTimeout(resolve, 2000);
    });
    const response = await fetch("/whep", {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) throw new Error(`WHEP ${response.status}: ${await response.text()}`);
    const resource = new URL(response.headers.get("Location"), new URL("/whep", window.location.href));
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    const ages = [];
    let last = null;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      for (const s of transceiver.receiver.getSynchronizationSources()) {
        if (s.captureTimestamp === undefined || s.rtpTimestamp === last) continue;
        last = s.rtpTimestamp;
        let age = s.timestamp - s.captureTimestamp;
        // An NTP-epoch capture time (1900) beside a Unix-epoch render time.
        if (Math.abs(age) > 1e9) age += 2208988800000 * Math.sign(-age);
        ages.push(age);
      }
    }
    let inbound = null;
    (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") inbound = r; });
    await fetch(resource.pathname, { method: "DELETE" });
    pc.close();
    ages.sort((a, b) => a - b);
    const at = (q) => (ages.length ? ages[Math.min(ages.length - 1, Math.floor(q * ages.length))] : null);
    const jb = inbound && inbound.jitterBufferEmittedCount
      ? (1000 * inbound.jitterBufferDelay) / inbound.jitterBufferEmittedCount : null;
    return {
      ages: ages.length, age_p50_ms: at(0.5), age_p99_ms: at(0.99), jitter_buffer_ms: jb,
      frames_decoded: inbound ? inbound.framesDecoded : null,
      frames_dropped: inbound ? inbound.framesDropped : null, first_frame_ms: firstFrameMs,
    };
  }, Number(seconds) * 1000);
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(`webrtc_tab: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
