// The face-swap page: uploads, the faces of the photo and the target found before a swap (facepicker.js),
// the consent form, a swap job with progress, the result with its provenance check, a gallery of results,
// live webcam mode over a WebSocket, and the audit log. Strings from users or the server go into the page
// through textContent only.

import { api, detailLines, fetchBlob, getToken, hasToken, uploadForm } from "./api.js";
import { FacePicker, SourceFace } from "./facepicker.js";
import { Gallery, wireDownload } from "./gallery.js";
import { STATUS_TEXT, followJob, renderJob } from "./jobcard.js";
import { make, onReady, registerServiceWorker, show, wireToken } from "./ui.js";
import { verifyInto, wireVerifyFile } from "./verify.js";

const $ = (id) => document.getElementById(id);
const el = {};
const uploaded = new WeakMap(); // File -> promise of its asset id, so a file is uploaded once
const audit = { next: null };
let resultUrl = null;
let live = null;
let gallery = null;

function showError(err) {
  const lines = err && err.detail !== undefined ? detailLines(err.detail) : [String(err.message || err)];
  el.error.replaceChildren(...lines.map((line) => make("p", line)));
  show(el.error);
}

function clearError() {
  el.error.replaceChildren();
  show(el.error, false);
}

/** The file's asset id. The promise is kept, so a swap pressed while the picker's upload of the same file
 *  runs waits for that upload; a failed upload is forgotten and tried again next time. */
function uploadOnce(file) {
  if (!uploaded.has(file)) {
    const pending = api("/api/uploads", { method: "POST", body: uploadForm(file) }).then((answer) => answer.asset_id);
    pending.catch(() => uploaded.delete(file));
    uploaded.set(file, pending);
  }
  return uploaded.get(file);
}

/** The consent and face choice as the API wants them; throws a readable error when incomplete. */
function consentAndChoice() {
  const subject = el.subject.value.trim();
  const statement = el.statement.value.trim();
  const missing = [];
  if (!el.source.files[0]) missing.push("source: choose a face photo");
  if (!subject) missing.push("consent.subject: name the person who consented");
  if (!statement) missing.push("consent.statement: write the consent statement");
  if (!el.confirm.checked) missing.push("consent: confirm that this person gave this consent");
  if (missing.length) throw { detail: missing };
  const mode = el.faces.value;
  return {
    consent: { subject, statement },
    target_face: mode === "index" ? Number(el.faceIndex.value) : null,
    many_faces: mode === "all",
    label_corner: el.corner.value,
    enhance: el.enhance.disabled ? 0 : Number(el.enhance.value),
    occlusion_mask: !el.occlusion.disabled && el.occlusion.checked,
    hand_mask: !el.hands.disabled && el.hands.checked,
    glasses: el.glasses.value,
    blend: el.blend.value,
    follow_gaze: !el.gaze.disabled && el.gaze.checked,
    region_mask: !el.regions.disabled && el.regions.checked,
  };
}

/** Enable the face-model controls the server has models for, and say which it has not. */
async function loadModelOptions() {
  let options;
  try {
    options = await api("/api/faceswap/options");
  } catch {
    return;
  }
  const missing = [];
  let builtInMissing = false;
  for (const [key, input, what, setting] of [["hand_mask", el.hands, "hand models", ""],
    ["follow_gaze", el.gaze, "iris model", ""],
    ["enhance", el.enhance, "face enhancer", "GENSTUDIO_FACESWAP_ENHANCER_MODEL"],
    ["occlusion_mask", el.occlusion, "occluder", "GENSTUDIO_FACESWAP_OCCLUDER_MODEL"],
    ["region_mask", el.regions, "face parser", "GENSTUDIO_FACESWAP_PARSER_MODEL"]]) {
    input.disabled = !options[key];
    input.title = options[key] ? "" : (setting ? `needs a ${what} on the server (${setting})` : "needs make install");
    if (!options[key] && setting) missing.push(`${what} (${setting})`);
    if (!options[key] && !setting) builtInMissing = true;
  }
  const notes = [];
  if (missing.length) {
    notes.push(`Not on this server: ${missing.join(", ")}. Add an ONNX model with `
      + "genstudio models add FILE --kind faceswap, or set the setting (docs/faceswap.md).");
  }
  if (builtInMissing) notes.push("Built-in models (hands, irises) are missing: run make install on the server.");
  el.modelsNote.textContent = notes.length ? notes.join(" ") : "All face models are available on this server.";
}

function swapStatus(job, percent) {
  if (job.status === "running") return `Swapping… ${percent}%`;
  if (job.status === "failed") return `Failed: ${job.error}`;
  return STATUS_TEXT[job.status] || job.status;
}

async function submitSwap(event) {
  event.preventDefault();
  clearError();
  let body;
  try {
    body = consentAndChoice();
    if (!el.target.files[0]) throw { detail: ["target: choose a video or an image"] };
    if (el.faces.value === "reference" && !el.reference.files[0]) throw { detail: ["reference: choose a reference photo"] };
  } catch (err) {
    showError(err);
    return;
  }
  el.submit.disabled = true;
  show(el.result, false);
  try {
    el.status.textContent = "Uploading…";
    body.source = await uploadOnce(el.source.files[0]);
    body.target = await uploadOnce(el.target.files[0]);
    body.reference = el.faces.value === "reference" ? await uploadOnce(el.reference.files[0]) : null;
    const started = await api("/api/faceswap", { method: "POST", json: body });
    renderJob(el.job, { status: "queued", progress: 0 }, swapStatus);
    show(el.progress);
    const job = await followJob(started.job_id, el.job, swapStatus);
    if (job.status === "succeeded") {
      await showResult(job.assets[0]);
      await gallery.add(job.assets);
    }
  } catch (err) {
    el.status.textContent = "";
    showError(err);
  } finally {
    el.submit.disabled = false;
    loadAudit();
  }
}

const extension = (mime) => (mime === "video/mp4" ? ".mp4" : mime === "image/jpeg" ? ".jpg" : ".png");

/** A result in the Result panel, with its provenance check. */
async function showResult(assetId) {
  const meta = await api(`/api/assets/${assetId}/meta`);
  const blob = await fetchBlob(`/api/assets/${assetId}`);
  if (resultUrl) URL.revokeObjectURL(resultUrl);
  resultUrl = URL.createObjectURL(blob);
  const isVideo = meta.mime === "video/mp4";
  show(el.resultVideo, isVideo);
  show(el.resultImg, !isVideo);
  if (isVideo) el.resultVideo.src = resultUrl;
  else el.resultImg.src = resultUrl;
  el.download.href = resultUrl;
  el.download.download = `genstudio-faceswap-${assetId.slice(0, 12)}${extension(meta.mime)}`;
  el.result.dataset.assetId = assetId;
  const consent = meta.params && meta.params.consent_id;
  el.status.textContent = consent ? `Done · consent ${consent.slice(0, 8)}` : "Done";
  show(el.result);
  await verifyInto(el.verify, el.download.download, () => blob, { checking: "Checking provenance…", label: true });
}

// ---------------------------------------------------------------- gallery

function makeCard(item) {
  const p = item.params || {};
  const node = $("swap-template").content.firstElementChild.cloneNode(true);
  const isVideo = item.mime === "video/mp4";
  const when = new Date(item.created_at).toLocaleString();
  const title = node.querySelector(".card-prompt");
  title.textContent = `${isVideo ? "Video" : "Image"} · ${when}`;
  // Every card has the same button names; the title tells a screen reader which result they act on.
  title.id = `title-${item.id}`;
  for (const control of node.querySelectorAll(".card-actions > *")) control.setAttribute("aria-describedby", title.id);
  node.querySelector(".m-consent").textContent = p.consent_id ? p.consent_id.slice(0, 8) : "?";
  node.querySelector(".m-corner").textContent = p.label_corner || "?";
  const img = node.querySelector(".card-img");
  if (isVideo) {
    img.remove(); // "Show" plays it in the Result panel
  } else {
    img.alt = `Face swap result from ${when}`;
    gallery.setImage(img, item);
  }
  const name = `genstudio-faceswap-${item.id.slice(0, 12)}${extension(item.mime)}`;
  wireDownload(node.querySelector(".card-download"), `${item.url}?download=true`, name, node);
  node.querySelector(".card-show").addEventListener("click", () => showResult(item.id).catch((err) => showError(err)));
  node.querySelector(".card-delete").addEventListener("click", () => {
    gallery.remove(item, node, `Delete the face-swap result from ${when}? This cannot be undone.`);
  });
  return node;
}

/** A deleted result leaves the Result panel too. */
function forgetShown(item) {
  if (el.result.dataset.assetId !== item.id) return;
  show(el.result, false);
  delete el.result.dataset.assetId;
}

// ---------------------------------------------------------------- live mode

async function startLive() {
  clearError();
  let hello;
  try {
    hello = consentAndChoice();
    hello.source = await uploadOnce(el.source.files[0]);
  } catch (err) {
    showError(err);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    showError({ detail: [`camera: ${err.message || err.name}`] });
    return;
  }
  el.camera.srcObject = stream;
  await el.camera.play();
  const protocols = ["genstudio.live"];
  if (hasToken()) protocols.push(`bearer.${getToken()}`);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/faceswap/live`, protocols);
  ws.binaryType = "blob";
  const canvas = document.createElement("canvas");
  const state = { ws, stream, canvas, times: [], frames: 0, url: null, stopped: false };
  live = state;
  show(el.liveStart, false);
  show(el.liveStop);
  el.liveStatus.textContent = "Connecting…";

  const sendFrame = () => {
    if (state.stopped || ws.readyState !== WebSocket.OPEN) return;
    const v = el.camera;
    const scale = Math.min(1, 640 / (v.videoWidth || 640));
    canvas.width = Math.round((v.videoWidth || 640) * scale);
    canvas.height = Math.round((v.videoHeight || 480) * scale);
    canvas.getContext("2d").drawImage(v, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => blob && !state.stopped && ws.send(blob), "image/jpeg", 0.8);
  };
  ws.addEventListener("open", () => ws.send(JSON.stringify(hello)));
  ws.addEventListener("message", (event) => {
    if (typeof event.data === "string") {
      const msg = JSON.parse(event.data);
      if (msg.type === "ready") {
        state.consent = msg.consent_id.slice(0, 8);
        el.liveStatus.textContent = `Live · consent ${state.consent}`;
        sendFrame();
      } else if (msg.type === "error") {
        showError({ detail: [msg.detail] });
      } else if (msg.type === "stats") {
        // The server counts the faces it swapped in each frame: say so when there was none.
        el.liveStatus.textContent = `Live · consent ${state.consent} · ` +
          (msg.faces ? `${msg.faces} face${msg.faces > 1 ? "s" : ""} swapped` : "no face in view");
        el.liveStatus.dataset.faces = String(msg.faces);
      } else if (msg.type === "ended") {
        el.liveStatus.textContent = `Stopped after ${msg.frames} frames`;
        loadAudit();
      }
      return;
    }
    // One frame in flight: the next goes out when this one is back, so latency stays bounded.
    const now = performance.now();
    state.times = state.times.filter((t) => now - t < 2000).concat(now);
    state.frames += 1;
    const fps = state.times.length > 1 ? ((state.times.length - 1) * 1000) / (now - state.times[0]) : 0;
    el.fps.textContent = `${fps.toFixed(1)} fps`;
    el.fps.dataset.fps = fps.toFixed(2);
    el.frames.textContent = `${state.frames} frames`;
    el.frames.dataset.frames = String(state.frames);
    if (state.url) URL.revokeObjectURL(state.url);
    state.url = URL.createObjectURL(event.data);
    el.liveOutput.src = state.url;
    show(el.liveOutput);
    sendFrame();
  });
  ws.addEventListener("close", (event) => {
    if (!state.stopped && event.code !== 1000) {
      el.liveStatus.textContent = event.code === 4401 || event.code === 1006 && !state.frames
        ? "The live connection was refused (API token?)" : `Live ended (${event.code})`;
    }
    stopLive(false);
  });
}

function stopLive(closeSocket = true) {
  if (!live) return;
  const state = live;
  live = null;
  state.stopped = true;
  if (closeSocket && state.ws.readyState === WebSocket.OPEN) {
    // Ask the server to end: it writes the audit row, answers "ended" and closes.
    state.ws.send(JSON.stringify({ type: "stop" }));
    setTimeout(() => state.ws.readyState <= WebSocket.OPEN && state.ws.close(1000), 3000);
  }
  for (const track of state.stream.getTracks()) track.stop();
  el.camera.srcObject = null;
  show(el.liveStart);
  show(el.liveStop, false);
  if (!closeSocket) loadAudit();
}

// ---------------------------------------------------------------- audit log

async function loadAudit(more = false) {
  try {
    const query = new URLSearchParams({ limit: "20" });
    if (more && audit.next) query.set("before", audit.next);
    const page = await api(`/api/faceswap/audit?${query}`);
    const rows = page.items.map((item) => {
      const tr = make("tr");
      tr.dataset.auditId = item.id;
      tr.dataset.outcome = item.outcome;
      const when = new Date(item.created_at);
      const output = make("td", item.output && item.output.sha256 ? item.output.sha256.slice(0, 12) : "—", "hash");
      if (item.output && item.output.asset_id) {
        const open = make("button", "Show", "link");
        open.type = "button";
        open.setAttribute("aria-label", `Show the result of the swap at ${when.toLocaleString()}`);
        open.addEventListener("click", () => showResult(item.output.asset_id).catch((err) => showError(err)));
        output.append(" ", open);
      }
      const outcome = make("td", item.error ? `${item.outcome}: ${item.error}` : item.outcome, `outcome-${item.outcome}`);
      tr.append(make("td", when.toLocaleString()), make("td", item.actor), make("td", item.mode),
        make("td", item.consent.subject || item.consent.id), outcome, output);
      return tr;
    });
    if (more) el.auditRows.append(...rows);
    else el.auditRows.replaceChildren(...rows);
    audit.next = page.next;
    show(el.auditMore, Boolean(page.next));
    show(el.auditError, false);
  } catch (err) {
    el.auditError.textContent = `Audit log: ${err.message}`;
    show(el.auditError);
  }
}

function init() {
  Object.assign(el, {
    form: $("fs-form"), source: $("fs-source"), target: $("fs-target"), subject: $("fs-subject"),
    statement: $("fs-statement"), confirm: $("fs-confirm"), faces: $("fs-faces"), faceIndex: $("fs-face-index"),
    corner: $("fs-corner"), reference: $("fs-reference"), error: $("fs-error"), submit: $("fs-submit"),
    status: $("fs-status"), progress: $("fs-progress"), result: $("fs-result"), resultVideo: $("fs-result-video"),
    resultImg: $("fs-result-img"), download: $("fs-download"), verify: $("fs-verify"),
    verifyFile: $("verify-file"), verifyFileResult: $("verify-file-result"),
    liveStart: $("live-start"), liveStop: $("live-stop"), liveStatus: $("live-status"), camera: $("live-camera"),
    liveOutput: $("live-output"), fps: $("live-fps"), frames: $("live-frames"),
    auditRows: $("audit-rows"), auditMore: $("audit-more"), auditError: $("audit-error"),
    gallery: $("gallery"), galleryEmpty: $("gallery-empty"), galleryError: $("gallery-error"), loadMore: $("load-more"),
    tokenDialog: $("token-dialog"), tokenInput: $("token-input"), tokenError: $("token-error"),
    forgetToken: $("forget-token"), enhance: $("fs-enhance"), enhanceValue: $("fs-enhance-value"),
    occlusion: $("fs-occlusion"), hands: $("fs-hands"), glasses: $("fs-glasses"), blend: $("fs-blend"), gaze: $("fs-gaze"), regions: $("fs-regions"), modelsNote: $("fs-models-note"),
  });
  el.enhance.addEventListener("input", () => {
    const v = Number(el.enhance.value);
    el.enhanceValue.textContent = v > 0 ? `${Math.round(v * 100)}%` : "off";
  });
  const picker = new FacePicker({
    root: $("fs-picker"), frameRow: $("fs-frame-row"), frame: $("fs-frame"), find: $("fs-find"), frameNote: $("fs-frame-note"),
    stage: $("fs-stage"),
    img: $("fs-target-img"), video: $("fs-target-video"), canvas: $("fs-boxes"), status: $("fs-detect-status"),
    error: $("fs-detect-error"), choice: $("fs-choice"), list: $("fs-face-list"), faces: el.faces,
    faceIndex: el.faceIndex,
  }, uploadOnce);
  const sourceFace = new SourceFace({ root: $("fs-source-face"), thumb: $("fs-source-thumb"), status: $("fs-source-status") },
    uploadOnce);
  el.target.addEventListener("change", () => picker.choose(el.target.files[0] || null));
  el.source.addEventListener("change", () => sourceFace.choose(el.source.files[0] || null));
  // The swap's progress shows on the Result panel's own bar and status line.
  el.job = { bar: el.progress, fill: el.progress.querySelector(".bar-fill"), status: el.status };
  wireToken(el);
  gallery = new Gallery({
    list: el.gallery, empty: el.galleryEmpty, error: el.galleryError, more: el.loadMore,
    studio: "faceswap", makeCard, onRemove: forgetShown,
  });
  el.form.addEventListener("submit", submitSwap);
  el.faces.addEventListener("change", () => {
    el.faceIndex.disabled = el.faces.value !== "index";
    el.reference.disabled = el.faces.value !== "reference";
  });
  wireVerifyFile(el.verifyFile, el.verifyFileResult, { label: true });
  el.liveStart.addEventListener("click", startLive);
  el.liveStop.addEventListener("click", () => stopLive(true));
  el.auditMore.addEventListener("click", () => loadAudit(true));
  registerServiceWorker();
  Promise.all([loadAudit(), gallery.load(), loadModelOptions()]).finally(() => {
    document.body.dataset.ready = "true";
  });
}

onReady(init);
