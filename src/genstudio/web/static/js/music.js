// The music studio page: sample / compose, interpolate and vary as jobs, MIDI uploads, and a gallery of
// melodies with a piano roll, playback with a moving playhead, sheet music and downloads. Strings from a
// user or the server go into the page through textContent or attributes, never through innerHTML.

import {
  api, detailLines, fetchBlob, hasToken, getToken, onTokenChange, setToken, setTokenPrompt, uploadForm,
} from "./api.js";
import { FINAL, askForToken, cancelJob, make, show, watchJob } from "./ui.js";

const PAGE_SIZE = Math.min(200, Math.max(1, Number(new URLSearchParams(location.search).get("limit")) || 12));
const STATUS_TEXT = { queued: "Queued", running: "Running", succeeded: "Done", failed: "Failed", cancelled: "Cancelled" };
const TONICS = ["C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B"];
const PITCH_NAMES = ["C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"];
const STEPS_PER_BAR = 16;
const OSMD_URL = "/static/vendor/opensheetmusicdisplay/opensheetmusicdisplay.min.js";
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const el = {};
const gallery = { next: null, ids: new Set() };
const melodies = new Map(); // asset id -> {id, label, upload, track}
const instruments = [];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const short = (id) => id.slice(0, 8);

export function pitchName(pitch) {
  return `${PITCH_NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

// ---------------------------------------------------------------- token

// ---------------------------------------------------------------- piano roll

/**
 * An SVG piano roll: notes [[pitch, startStep, endStep], ...] on the 16th grid, `bars` bars of 4/4.
 * Black-key rows are shaded, bar and beat lines drawn, C rows labelled. Returns {node, setPlayhead(step|null)}.
 */
export function pianoRoll(notes, bars, label = "Melody") {
  const W = 400;
  const LABEL = 28;
  const ROW = 7;
  const steps = Math.max(1, bars) * STEPS_PER_BAR;
  let lo = notes.length ? Math.min(...notes.map((n) => n[0])) - 1 : 59;
  let hi = notes.length ? Math.max(...notes.map((n) => n[0])) + 1 : 73;
  while (hi - lo < 12) {
    hi += 1;
    if (hi - lo < 12) lo -= 1;
  }
  const rows = hi - lo + 1;
  const H = rows * ROW;
  const cw = (W - LABEL) / steps;
  const y = (p) => (hi - p) * ROW;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: bars > 8 ? "roll long" : "roll", role: "img" });
  const range = notes.length
    ? `, ${pitchName(Math.min(...notes.map((n) => n[0])))} to ${pitchName(Math.max(...notes.map((n) => n[0])))}`
    : "";
  root.setAttribute("aria-label", `Piano roll of ${label}: ${notes.length} notes${range}, ${bars} bars`);
  root.append(svg("rect", { x: LABEL, y: 0, width: W - LABEL, height: H, class: "roll-bg" }));
  for (let p = lo; p <= hi; p++) {
    if ([1, 3, 6, 8, 10].includes(p % 12)) {
      root.append(svg("rect", { x: LABEL, y: y(p), width: W - LABEL, height: ROW, class: "roll-black" }));
    }
    if (p % 12 === 0) {
      root.append(svg("text", { x: LABEL - 3, y: y(p) + ROW / 2, class: "roll-label", "text-anchor": "end", "dominant-baseline": "central" }, pitchName(p)));
      root.append(svg("line", { x1: LABEL, x2: W, y1: y(p) + ROW, y2: y(p) + ROW, class: "roll-c" }));
    }
  }
  const beat = bars > 16 ? STEPS_PER_BAR : 4;
  for (let s = 0; s <= steps; s += beat) {
    const x = LABEL + s * cw;
    root.append(svg("line", { x1: x, x2: x, y1: 0, y2: H, class: s % STEPS_PER_BAR === 0 ? "roll-bar" : "roll-beat" }));
  }
  const group = svg("g", { class: "roll-notes" });
  for (const [pitch, start, end] of notes) {
    const rect = svg("rect", {
      x: LABEL + start * cw, y: y(pitch) + 0.5, width: Math.max(1.5, (end - start) * cw - 0.6), height: ROW - 1,
      rx: 1.5, class: "note",
    });
    rect.append(svg("title", {}, `${pitchName(pitch)}, bar ${Math.floor(start / STEPS_PER_BAR) + 1}`));
    group.append(rect);
  }
  root.append(group);
  const head = svg("line", { x1: LABEL, x2: LABEL, y1: 0, y2: H, class: "playhead", visibility: "hidden" });
  root.append(head);
  return {
    node: root,
    steps,
    /** The 16th step under a click at clientX, or null outside the notes area. */
    stepAt(clientX) {
      const box = root.getBoundingClientRect();
      const x = ((clientX - box.left) / box.width) * W;
      return x < LABEL ? null : Math.min(steps, (x - LABEL) / cw);
    },
    setPlayhead(step) {
      if (step === null || step < 0 || step > steps) {
        head.setAttribute("visibility", "hidden");
        return;
      }
      const x = LABEL + step * cw;
      head.setAttribute("x1", String(x));
      head.setAttribute("x2", String(x));
      head.setAttribute("visibility", "visible");
    },
  };
}

// ---------------------------------------------------------------- sheet music

let osmdLoading = null;

/** OpenSheetMusicDisplay's UMD build sets window.opensheetmusicdisplay; load it only when first asked. */
function loadOsmd() {
  if (window.opensheetmusicdisplay) return Promise.resolve(window.opensheetmusicdisplay);
  if (!osmdLoading) {
    osmdLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = OSMD_URL;
      script.async = true;
      script.addEventListener("load", () => resolve(window.opensheetmusicdisplay));
      script.addEventListener("error", () => {
        osmdLoading = null;
        script.remove();
        reject(new Error("could not load the sheet music renderer"));
      });
      document.head.append(script);
    });
  }
  return osmdLoading;
}

async function renderSheet(box, item) {
  box.replaceChildren(make("p", "Rendering sheet music…", "hint"));
  show(box);
  const response = await fetchBlob(`${item.url}?format=musicxml`);
  const xml = await response.text();
  try {
    const lib = await loadOsmd();
    const target = make("div", undefined, "osmd");
    box.replaceChildren(target);
    const osmd = new lib.OpenSheetMusicDisplay(target, {
      backend: "svg", autoResize: false, drawTitle: false, drawSubtitle: false, drawComposer: false,
      drawCredits: false, drawPartNames: false, drawingParameters: "compacttight",
    });
    await osmd.load(xml);
    osmd.render();
    box.dataset.renderer = "osmd";
  } catch (err) {
    // The fallback: a plain staff of our own, drawn from the melody's notes.
    box.replaceChildren(simpleStaff(item.params.notes || [], item.params.bars || 2),
      make("p", `Simple staff shown (${err.message || err}).`, "hint"));
    box.dataset.renderer = "simple";
  }
}

/** A treble staff with noteheads placed by pitch and time: enough to read a melody when OSMD is unavailable. */
export function simpleStaff(notes, bars) {
  const DIATONIC = [0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5, 6]; // C C# D D# E F F# G G# A A# B -> letter index
  const SHARP = new Set([1, 3, 6, 8, 10]);
  const steps = bars * STEPS_PER_BAR;
  const W = Math.max(320, bars * 160);
  const GAP = 8;
  const top = 40;
  const H = top + 4 * GAP + 48;
  const x0 = 36;
  const cw = (W - x0 - 8) / steps;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "staff", role: "img" });
  root.setAttribute("aria-label", `Sheet music: ${notes.length} notes in ${bars} bars`);
  for (let i = 0; i < 5; i++) root.append(svg("line", { x1: 4, x2: W - 4, y1: top + i * GAP, y2: top + i * GAP, class: "staff-line" }));
  root.append(svg("text", { x: 6, y: top + 4 * GAP - 2, class: "staff-clef" }, "𝄞"));
  for (let b = 0; b <= bars; b++) {
    const x = x0 + b * STEPS_PER_BAR * cw - 4;
    root.append(svg("line", { x1: x, x2: x, y1: top, y2: top + 4 * GAP, class: "staff-line" }));
  }
  const bottomLine = 4 * 7 + 2; // E4 in diatonic steps from C0
  for (const [pitch, start, end] of notes) {
    const dia = Math.floor(pitch / 12) * 7 + DIATONIC[pitch % 12];
    const pos = dia - bottomLine; // 0 = bottom line, 2 = next line...
    const cy = top + 4 * GAP - (pos * GAP) / 2;
    const cx = x0 + start * cw;
    for (let l = -2; l >= pos; l -= 2) root.append(svg("line", { x1: cx - 7, x2: cx + 7, y1: top + 4 * GAP - (l * GAP) / 2, y2: top + 4 * GAP - (l * GAP) / 2, class: "staff-line" }));
    for (let l = 10; l <= pos; l += 2) root.append(svg("line", { x1: cx - 7, x2: cx + 7, y1: top + 4 * GAP - (l * GAP) / 2, y2: top + 4 * GAP - (l * GAP) / 2, class: "staff-line" }));
    const hollow = end - start >= 8;
    root.append(svg("ellipse", { cx, cy, rx: 4.6, ry: 3.4, class: hollow ? "staff-note hollow" : "staff-note" }));
    if (end - start < 16) root.append(svg("line", { x1: cx + 4.2, x2: cx + 4.2, y1: cy, y2: cy - 24, class: "staff-stem" }));
    if (SHARP.has(pitch % 12)) root.append(svg("text", { x: cx - 13, y: cy + 4, class: "staff-acc" }, "♯"));
  }
  return root;
}

// ---------------------------------------------------------------- forms

function rangeOutput(input, digits = 2) {
  const out = $(`${input.id}-out`);
  const update = () => {
    out.textContent = Number(input.value).toFixed(digits);
  };
  input.addEventListener("input", update);
  update();
}

function selectTab(name, focus = false) {
  for (const tab of el.tabs) {
    const selected = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    show($(tab.getAttribute("aria-controls")), selected);
    if (selected && focus) tab.focus();
  }
}

function wireTabs() {
  el.tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab.id.slice(4)));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: 1, ArrowLeft: -1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const next = el.tabs[(i + moves[event.key] + el.tabs.length) % el.tabs.length];
      selectTab(next.id.slice(4), true);
    });
  });
}

function numberOf(input, errors) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  if ((input.validity && input.validity.badInput) || !Number.isFinite(value)) {
    errors.push(`${input.name}: not a number`);
    return undefined;
  }
  return value;
}

function instrumentOf(select, body) {
  if (select.value !== "") body.instrument = Number(select.value);
}

function trackOf(id) {
  const m = melodies.get(id);
  return m && m.upload && m.track !== null && m.track !== undefined ? m.track : undefined;
}

function readSample() {
  const errors = [];
  const body = { n: numberOf(el.sN, errors), bars: Number(el.sBars.value), temperature: Number(el.sTemp.value) };
  if (body.n === undefined) delete body.n;
  const tempo = numberOf(el.sTempo, errors);
  if (tempo !== undefined) body.tempo = tempo;
  if (el.sTonic.value) body.key = `${el.sTonic.value} ${el.sMode.value}`;
  instrumentOf(el.sInstrument, body);
  if (el.sDensityOn.checked) body.density = Number(el.sDensity.value);
  if (el.sChords.value.trim()) body.chords = el.sChords.value.trim();
  if (!el.sSeedRandom.checked) {
    const seed = numberOf(el.sSeed, errors);
    if (seed !== undefined) body.seed = seed;
  }
  return { body, errors };
}

function readInterpolate() {
  const errors = [];
  const body = { start: el.iStart.value, end: el.iEnd.value, temperature: Number(el.iTemp.value) };
  if (!body.start) errors.push("start: choose a start melody");
  if (!body.end) errors.push("end: choose an end melody");
  const steps = numberOf(el.iSteps, errors);
  if (steps !== undefined) body.steps = steps;
  instrumentOf(el.iInstrument, body);
  const st = trackOf(body.start);
  const et = trackOf(body.end);
  if (st !== undefined) body.start_track = st;
  if (et !== undefined) body.end_track = et;
  return { body, errors };
}

function readVary() {
  const errors = [];
  const body = { source: el.vSource.value, similarity: Number(el.vSim.value), temperature: Number(el.vTemp.value) };
  if (!body.source) errors.push("source: choose a melody to vary");
  const n = numberOf(el.vN, errors);
  if (n !== undefined) body.n = n;
  const track = trackOf(body.source);
  if (track !== undefined) body.track = track;
  return { body, errors };
}

function clearFormError(form) {
  const box = form.querySelector(".form-error");
  box.replaceChildren();
  show(box, false);
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function showFormError(form, lines, fields = []) {
  clearFormError(form);
  const box = form.querySelector(".form-error");
  if (lines.length === 1) box.append(make("p", lines[0]));
  else {
    const list = make("ul");
    for (const line of lines) list.append(make("li", line));
    box.append(list);
  }
  show(box);
  let first = null;
  for (const name of fields) {
    const input = form.elements.namedItem(name === "key" ? "key" : name);
    if (!input || !input.setAttribute) continue;
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
}

const fieldsFromLines = (lines) => lines.map((l) => /^([a-z_]+)[:.]/.exec(l)).filter(Boolean).map((m) => m[1]);

function describeJob(op, p) {
  if (op === "sample") {
    const what = `${p.n} melod${p.n === 1 ? "y" : "ies"} · ${p.bars} bars`;
    return p.key || p.chords || p.density !== null ? `Compose ${what}` : `Sample ${what}`;
  }
  if (op === "interpolate") return `Interpolate ${short(p.start)} → ${short(p.end)} in ${p.steps} steps`;
  return `Vary ${short(p.source)} ×${p.n}`;
}

function paramsSummary(p) {
  const parts = [];
  if (p.key) parts.push(p.key);
  if (p.chords) parts.push(`chords ${p.chords}`);
  if (p.density !== null && p.density !== undefined) parts.push(`density ${p.density}`);
  if (p.tempo) parts.push(`${p.tempo} BPM`);
  if (p.similarity !== undefined) parts.push(`similarity ${p.similarity}`);
  parts.push(`mood ${p.temperature}`);
  if (p.seed !== null && p.seed !== undefined) parts.push(`seed ${p.seed}`);
  for (const name of ["start_melody", "end_melody", "source_melody"]) {
    const m = p[name];
    if (m && m.dropped) {
      const dropped = Object.values(m.dropped).reduce((a, b) => a + b, 0);
      if (dropped) parts.push(`${name.split("_")[0]}: ${dropped} notes dropped`);
    }
  }
  return parts.join(" · ");
}

async function submit(event, op) {
  event.preventDefault();
  const form = event.currentTarget;
  const { body, errors } = { sample: readSample, interpolate: readInterpolate, vary: readVary }[op]();
  if (errors.length) {
    showFormError(form, errors, fieldsFromLines(errors));
    return;
  }
  clearFormError(form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await api(`/api/music/${op}`, { method: "POST", json: body });
    startJob(answer.job_id, op, answer.params);
  } catch (err) {
    const lines = err.detail !== undefined ? detailLines(err.detail) : [String(err.message || err)];
    showFormError(form, lines, err.fields && err.fields.length ? err.fields : fieldsFromLines(lines));
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- jobs

function startJob(jobId, op, params) {
  const node = $("job-template").content.firstElementChild.cloneNode(true);
  const ui = {
    node, op,
    bar: node.querySelector(".bar"),
    fill: node.querySelector(".bar-fill"),
    status: node.querySelector(".job-status"),
    cancel: node.querySelector(".job-cancel"),
    error: node.querySelector(".job-error"),
  };
  const title = describeJob(op, params);
  node.dataset.jobId = jobId;
  node.dataset.op = op;
  node.querySelector(".job-prompt").textContent = title;
  node.querySelector(".job-params").textContent = paramsSummary(params);
  ui.bar.setAttribute("aria-label", `Progress of ${title}`);
  ui.cancel.setAttribute("aria-label", `Cancel ${title}`);
  ui.cancel.addEventListener("click", () => cancelJob(jobId, ui, renderJob));
  el.jobs.prepend(node);
  show(el.jobsEmpty, false);
  followJob(jobId, ui);
}

function renderJob(ui, job) {
  const percent = job.status === "succeeded" ? 100 : Math.round((job.progress || 0) * 100);
  ui.bar.setAttribute("aria-valuenow", String(percent));
  ui.bar.setAttribute("aria-valuetext", `${percent}% (${STATUS_TEXT[job.status] || job.status})`);
  ui.fill.style.transform = `scaleX(${percent / 100})`;
  ui.node.dataset.status = job.status;
  let text = STATUS_TEXT[job.status] || job.status;
  if (job.status === "running") text += ` · ${percent}%`;
  if (job.status === "succeeded") text += ` · ${job.assets.length} melod${job.assets.length === 1 ? "y" : "ies"}`;
  ui.status.textContent = text;
  if (FINAL.has(job.status)) {
    ui.cancel.remove();
    if (job.status === "failed" || (job.status === "cancelled" && job.error && job.error !== "cancelled")) {
      ui.error.textContent = job.error || "The job failed.";
      show(ui.error);
    }
  }
}

async function followJob(jobId, ui) {
  let final;
  try {
    final = await watchJob(jobId, (job) => renderJob(ui, job));
  } catch (err) {
    ui.error.textContent = err.message;
    show(ui.error);
    ui.cancel.remove();
    return;
  }
  if (final.status === "succeeded") await addAssets(final.assets);
}

// ---------------------------------------------------------------- melody choices (start / end / source)

function registerMelody(entry) {
  const known = melodies.has(entry.id);
  melodies.set(entry.id, { ...(melodies.get(entry.id) || {}), ...entry });
  if (known) return;
  for (const select of el.picks) {
    const option = make("option", entry.label);
    option.value = entry.id;
    // Uploads and new results first, after the placeholder; older gallery pages at the end.
    if (entry.append) select.append(option);
    else select.insertBefore(option, select.options[1] || null);
  }
}

function useAs(role, id) {
  const target = { start: el.iStart, end: el.iEnd, source: el.vSource }[role];
  target.value = id;
  selectTab(role === "source" ? "vary" : "interpolate");
  clearFormError(target.form);
  target.focus({ preventScroll: true });
  el.compose.scrollIntoView({ block: "start", behavior: "smooth" });
}

function wireUseButtons(node, id) {
  node.querySelector(".use-start").addEventListener("click", () => useAs("start", id));
  node.querySelector(".use-end").addEventListener("click", () => useAs("end", id));
  node.querySelector(".vary-this").addEventListener("click", () => useAs("source", id));
}

// ---------------------------------------------------------------- gallery

async function addAssets(assetIds) {
  for (const id of assetIds) {
    if (gallery.ids.has(id)) continue;
    try {
      const meta = await api(`/api/assets/${encodeURIComponent(id)}/meta`);
      el.gallery.prepend(makeCard(meta));
    } catch (err) {
      showGalleryError(err.message);
    }
  }
  updateGalleryEmpty();
}

function updateGalleryEmpty() {
  show(el.galleryEmpty, el.gallery.children.length === 0);
}

function showGalleryError(message) {
  el.galleryError.textContent = message;
  show(el.galleryError, Boolean(message));
}

async function loadGallery(more = false) {
  const query = new URLSearchParams({ kind: "music", limit: String(PAGE_SIZE) });
  if (more && gallery.next) query.set("before", gallery.next);
  el.loadMore.disabled = true;
  try {
    const page = await api(`/api/gallery?${query}`);
    for (const item of page.items) {
      if (!gallery.ids.has(item.id)) el.gallery.append(makeCard(item, true));
    }
    gallery.next = page.next;
    showGalleryError("");
  } catch (err) {
    showGalleryError(`Could not load the gallery: ${err.message}`);
  } finally {
    el.loadMore.disabled = false;
    show(el.loadMore, Boolean(gallery.next));
    updateGalleryEmpty();
  }
}

function melodyLabel(item) {
  const p = item.params || {};
  const op = { sample: "Melody", interpolate: "Interpolation", vary: "Variation" }[p.op] || "Melody";
  const index = Number.isInteger(p.index) ? ` ${p.index + 1}` : "";
  return `${op}${index} · ${short(item.id)}`;
}

function statsText(p) {
  const s = p.stats || {};
  const parts = [];
  if (s.notes !== undefined) parts.push(`${s.notes} notes`);
  if (s.in_key !== undefined) parts.push(`${Math.round(s.in_key * 100)}% in key`);
  if (s.range !== undefined) parts.push(`range ${s.range} semitones`);
  return parts.join(", ") || "?";
}

async function srcFor(url) {
  if (!hasToken()) return url;
  return URL.createObjectURL(await fetchBlob(url));
}

function wirePlayer(node, item, roll) {
  const p = item.params || {};
  const audio = node.querySelector("audio");
  const button = node.querySelector(".play");
  const stepSeconds = 60 / (p.tempo || 120) / 4;
  let frame = 0;
  const tick = () => {
    roll.setPlayhead(audio.currentTime / stepSeconds);
    if (!audio.paused && !audio.ended) frame = requestAnimationFrame(tick);
  };
  const setPlaying = (playing) => {
    button.textContent = playing ? "Pause" : "Play";
    button.setAttribute("aria-pressed", String(playing));
    node.dataset.playing = String(playing);
  };
  audio.addEventListener("play", () => {
    // One melody at a time: starting this one pauses any other.
    for (const other of document.querySelectorAll("audio")) if (other !== audio && !other.paused) other.pause();
    setPlaying(true);
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(tick);
  });
  audio.addEventListener("pause", () => setPlaying(false));
  audio.addEventListener("ended", () => {
    setPlaying(false);
    roll.setPlayhead(null);
  });
  audio.addEventListener("error", () => {
    setPlaying(false);
    button.disabled = false;
    cardError(node, "Could not load the audio.");
  });
  roll.node.addEventListener("click", (event) => {
    const step = roll.stepAt(event.clientX);
    if (step === null || !audio.getAttribute("src")) return;
    audio.currentTime = step * stepSeconds;
    roll.setPlayhead(step);
  });
  button.addEventListener("click", async () => {
    cardError(node, "");
    if (!audio.paused) {
      audio.pause();
      return;
    }
    if (!audio.getAttribute("src")) {
      button.disabled = true;
      button.textContent = "Loading…";
      try {
        audio.src = await srcFor(`${item.url}?format=wav`);
      } catch (err) {
        cardError(node, err.message);
        setPlaying(false);
        return;
      } finally {
        button.disabled = false;
      }
    }
    try {
      await audio.play();
    } catch (err) {
      if (err.name !== "AbortError") cardError(node, `Could not play: ${err.message}`);
      setPlaying(false);
    }
  });
}

function wireDownloads(node, item) {
  const name = `genstudio-${short(item.id)}`;
  const links = [
    [".dl-midi", "", "mid", "MIDI"],
    [".dl-musicxml", "format=musicxml&", "musicxml", "MusicXML"],
    [".dl-wav", "format=wav&", "wav", "WAV"],
  ];
  for (const [selector, query, ext, label] of links) {
    const a = node.querySelector(selector);
    const url = `${item.url}?${query}download=true`;
    a.href = url;
    a.setAttribute("aria-label", `Download ${label} of ${melodyLabel(item)}`);
    a.addEventListener("click", async (event) => {
      if (!hasToken()) return; // a plain link works without a token
      event.preventDefault();
      try {
        const blobUrl = URL.createObjectURL(await fetchBlob(url));
        const tmp = make("a");
        tmp.href = blobUrl;
        tmp.download = `${name}.${ext}`;
        document.body.append(tmp);
        tmp.click();
        tmp.remove();
        setTimeout(() => URL.revokeObjectURL(blobUrl), 10_000);
      } catch (err) {
        cardError(node, err.message);
      }
    });
  }
}

function wireSheet(node, item) {
  const button = node.querySelector(".sheet-toggle");
  const box = node.querySelector(".sheet");
  button.setAttribute("aria-controls", (box.id = `sheet-${item.id}`));
  button.addEventListener("click", async () => {
    const open = button.getAttribute("aria-expanded") === "true";
    if (open) {
      button.setAttribute("aria-expanded", "false");
      show(box, false);
      return;
    }
    button.setAttribute("aria-expanded", "true");
    show(box);
    if (box.dataset.renderer) return;
    button.disabled = true;
    try {
      await renderSheet(box, item);
    } catch (err) {
      box.replaceChildren(make("p", `Could not load the sheet music: ${err.message}`, "error"));
    } finally {
      button.disabled = false;
    }
  });
}

function makeCard(item, append = false) {
  const p = item.params || {};
  const node = $("melody-template").content.firstElementChild.cloneNode(true);
  const label = melodyLabel(item);
  node.dataset.assetId = item.id;
  gallery.ids.add(item.id);
  const notes = Array.isArray(p.notes) ? p.notes : [];
  const roll = pianoRoll(notes, p.bars || 2, label);
  node.querySelector(".roll-box").append(roll.node);
  const title = node.querySelector(".melody-title");
  title.textContent = `${label} · ${p.instrument_name || "piano"}`;
  title.id = `title-${item.id}`;
  for (const control of node.querySelectorAll("button, .downloads a")) control.setAttribute("aria-describedby", title.id);
  node.querySelector(".m-key").textContent = p.key || "?";
  node.querySelector(".m-tempo").textContent = p.tempo ? `${Math.round(p.tempo)} BPM` : "?";
  node.querySelector(".m-bars").textContent = p.bars ?? "?";
  node.querySelector(".m-seed").textContent = item.seed ?? p.seed ?? "?";
  node.querySelector(".m-stats").textContent = statsText(p);
  wirePlayer(node, item, roll);
  wireSheet(node, item);
  wireDownloads(node, item);
  wireUseButtons(node, item.id);
  registerMelody({ id: item.id, label: `${label} (${p.key || "?"}, ${p.bars || "?"} bars)`, upload: false, append });
  return node;
}

function cardError(node, message) {
  const box = node.querySelector(".card-error");
  box.textContent = message;
  show(box, Boolean(message));
}

// ---------------------------------------------------------------- MIDI upload

function dropSummary(melody) {
  const dropped = Object.values(melody.dropped || {}).reduce((a, b) => a + b, 0);
  const head = `Melody: ${melody.notes} notes in ${melody.bars} bars from track ${melody.track}` +
    (melody.tracks > 1 ? ` of ${melody.tracks}` : "") + ".";
  if (!dropped) return `${head} Nothing was dropped.`;
  const text = melody.summary || `${dropped} notes`;
  return `${head} ${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

async function fillTracks(node, id, melody) {
  const box = node.querySelector(".upload-track");
  const select = node.querySelector(".track-select");
  const label = box.querySelector("label");
  select.id = `track-${id}`;
  label.htmlFor = select.id;
  let tracks = null;
  try {
    tracks = (await api(`/api/music/tracks/${encodeURIComponent(id)}`)).tracks;
  } catch {
    /* list the track numbers only */
  }
  const list = tracks || Array.from({ length: melody.tracks }, (_, i) => ({ index: i }));
  for (const t of list) {
    let text = `Track ${t.index}`;
    if (t.name) text += `: ${t.name}`;
    if (t.notes !== undefined) text += ` (${t.notes} notes${t.polyphonic ? ", chords" : ""}${t.is_drum ? ", drums" : ""})`;
    const option = make("option", text);
    option.value = String(t.index);
    option.disabled = Boolean(t.is_drum) || t.notes === 0;
    select.append(option);
  }
  select.value = String(melody.track);
  select.addEventListener("change", () => {
    melodies.get(id).track = Number(select.value);
  });
  show(box);
}

async function uploadMidi() {
  const file = el.midiFile.files[0];
  if (!file) return;
  el.uploadError.textContent = "";
  show(el.uploadError, false);
  try {
    const answer = await api("/api/uploads", { method: "POST", body: uploadForm(file) });
    if (answer.kind !== "midi" || !answer.melody) throw new Error(`${file.name} is not a MIDI file (${answer.kind})`);
    const melody = answer.melody;
    const node = $("upload-template").content.firstElementChild.cloneNode(true);
    node.dataset.assetId = answer.asset_id;
    const name = node.querySelector(".upload-name");
    name.textContent = file.name;
    name.id = `upload-${answer.asset_id}`;
    for (const b of node.querySelectorAll("button")) b.setAttribute("aria-describedby", name.id);
    node.querySelector(".upload-summary").textContent = dropSummary(melody);
    wireUseButtons(node, answer.asset_id);
    el.uploads.prepend(node);
    registerMelody({ id: answer.asset_id, label: `Upload: ${file.name}`, upload: true, track: melody.track });
    if (melody.tracks > 1) await fillTracks(node, answer.asset_id, melody);
  } catch (err) {
    el.uploadError.textContent = `${file.name}: ${err.message}`;
    show(el.uploadError);
  } finally {
    el.midiFile.value = "";
  }
}

// ---------------------------------------------------------------- on this device

let onDevice = null;
let audioContext = null;

/** Play notes [[pitch, start, end]] with a soft triangle wave (no server, no soundfont). Returns a stop(). */
function synthPlay(notes, tempo, roll, done) {
  audioContext = audioContext || new AudioContext();
  const ctx = audioContext;
  const stepSeconds = 60 / tempo / 4;
  const t0 = ctx.currentTime + 0.05;
  const out = ctx.createGain();
  out.gain.value = 0.18;
  out.connect(ctx.destination);
  for (const [pitch, start, end] of notes) {
    const osc = ctx.createOscillator();
    const env = ctx.createGain();
    osc.type = "triangle";
    osc.frequency.value = 440 * 2 ** ((pitch - 69) / 12);
    const a = t0 + start * stepSeconds;
    const b = t0 + end * stepSeconds;
    env.gain.setValueAtTime(0, a);
    env.gain.linearRampToValueAtTime(1, a + 0.01);
    env.gain.setTargetAtTime(0, b - 0.03, 0.02);
    osc.connect(env).connect(out);
    osc.start(a);
    osc.stop(b + 0.1);
  }
  const length = Math.max(0, ...notes.map((n) => n[2])) * stepSeconds;
  let frame = 0;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    cancelAnimationFrame(frame);
    out.disconnect();
    roll.setPlayhead(null);
    done();
  };
  const tick = () => {
    const elapsed = ctx.currentTime - t0;
    if (elapsed > length + 0.1) return stop();
    roll.setPlayhead(Math.max(0, elapsed / stepSeconds));
    frame = requestAnimationFrame(tick);
  };
  ctx.resume().then(() => {
    frame = requestAnimationFrame(tick);
  });
  return stop;
}

// Melodies made on this device keep their model tokens, so a path between two of them needs no server.
const devicePath = { start: null, end: null };

function updateDevicePath() {
  const ready = devicePath.start && devicePath.end;
  el.ondeviceInterpolate.disabled = !ready;
  const name = (x) => (x ? x.label : "none");
  el.ondevicePick.textContent = `Start: ${name(devicePath.start)} · End: ${name(devicePath.end)}`;
}

function onDeviceCard(rows, bars, label, details, tempo, tokens) {
  const li = make("li", undefined, "card melody ondevice");
  const roll = pianoRoll(rows, bars, label);
  const box = make("div", undefined, "roll-box");
  box.append(roll.node);
  const info = make("div", undefined, "melody-info");
  const title = make("p", label, "card-prompt melody-title");
  info.append(title, make("p", details, "hint"));
  const actions = make("div", undefined, "card-actions player");
  const play = make("button", "Play", "play");
  play.type = "button";
  play.setAttribute("aria-pressed", "false");
  play.setAttribute("aria-label", `Play ${label}`);
  let stop = null;
  const setPlaying = (playing) => {
    play.textContent = playing ? "Stop" : "Play";
    play.setAttribute("aria-pressed", String(playing));
    li.dataset.playing = String(playing);
  };
  play.addEventListener("click", () => {
    if (stop) {
      stop();
      return;
    }
    setPlaying(true);
    stop = synthPlay(rows, tempo, roll, () => {
      stop = null;
      setPlaying(false);
    });
  });
  actions.append(play);
  if (tokens) {
    for (const end of ["start", "end"]) {
      const pick = make("button", end === "start" ? "Start" : "End");
      pick.type = "button";
      pick.setAttribute("aria-label", `Use ${label} as the ${end} of an on-device path`);
      pick.addEventListener("click", () => {
        devicePath[end] = { tokens, label };
        updateDevicePath();
      });
      actions.append(pick);
    }
  }
  li.append(box, info, actions);
  return li;
}

async function loadOnDevice() {
  onDevice = onDevice || (await import("./music-ondevice.js"));
  const token = getToken();
  await onDevice.load("/api/music/onnx/", token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  return onDevice;
}

/** The Interpolate form's start and end (gallery melodies), interpolated in the browser. */
async function interpolateGalleryOnDevice() {
  const form = el.interpolateForm;
  clearFormError(form);
  const ids = [el.iStart.value, el.iEnd.value];
  const names = ["start", "end"];
  for (let i = 0; i < 2; i += 1) {
    const entry = melodies.get(ids[i]);
    if (!ids[i] || !entry || entry.upload) {
      const line = !ids[i]
        ? `${names[i]}: choose a ${names[i]} melody`
        : `${names[i]}: uploaded MIDI files interpolate on the server (press Interpolate)`;
      showFormError(form, [line], [names[i]]);
      return;
    }
  }
  const button = $("i-ondevice");
  button.disabled = true;
  show(el.ondeviceStatus);
  try {
    el.ondeviceStatus.textContent = "Loading the model into this browser…";
    await loadOnDevice();
    const metas = await Promise.all(ids.map((id) => api(`/api/assets/${id}/meta`)));
    const tokens = metas.map((m) => onDevice.encodeNotes(m.params.notes.filter((n) => n[1] < onDevice.config().num_steps)));
    devicePath.start = { tokens: tokens[0], label: melodies.get(ids[0]).label };
    devicePath.end = { tokens: tokens[1], label: melodies.get(ids[1]).label };
    updateDevicePath();
    show(el.ondevicePanel);
    el.ondeviceSteps.value = String(Math.min(16, Math.max(2, Number(el.iSteps.value) || 5)));
    await interpolateOnDevice();
  } catch (err) {
    el.ondeviceStatus.textContent = `On-device interpolation is not available: ${err.message || err}`;
  } finally {
    button.disabled = false;
  }
}

async function interpolateOnDevice() {
  const status = el.ondeviceStatus;
  const { start, end } = devicePath;
  if (!start || !end || !onDevice) return;
  el.ondeviceInterpolate.disabled = true;
  show(status);
  try {
    const steps = Math.min(16, Math.max(2, Number(el.ondeviceSteps.value) || 5));
    const t0 = performance.now();
    const result = await onDevice.interpolate(start.tokens, end.tokens, steps, 0, 1);
    const ms = performance.now() - t0;
    const bars = Math.max(2, Math.round(onDevice.config().num_steps / STEPS_PER_BAR));
    const tempo = Math.min(300, Math.max(20, Number(el.sTempo.value) || 120));
    const made = result.notes.map((notes, i) => {
      const rows = notes.map((x) => [x.pitch, x.start, x.end]);
      const label = `On-device path ${i + 1}/${steps}`;
      const details = `${rows.length} notes · from ${start.label} to ${end.label} · not saved`;
      return onDeviceCard(rows, bars, label, details, tempo, result.tokens[i]);
    });
    el.ondeviceResults.prepend(...made);
    status.textContent = `Interpolated ${steps} melodies in this browser in ${Math.round(ms)} ms.`;
  } catch (err) {
    status.textContent = `On-device interpolation failed: ${err.message || err}`;
  } finally {
    updateDevicePath();
  }
}

async function sampleOnDevice() {
  const button = el.ondeviceButton;
  const status = el.ondeviceStatus;
  button.disabled = true;
  show(status);
  try {
    status.textContent = "Loading the model into this browser…";
    await loadOnDevice();
    const n = Math.min(onDevice.MAX_BATCH, Math.max(1, Number(el.sN.value) || 1));
    const seed = !el.sSeedRandom.checked && el.sSeed.value.trim() !== "" ? Number(el.sSeed.value) : undefined;
    const temperature = Number(el.sTemp.value);
    const t0 = performance.now();
    const result = await onDevice.sample(n, temperature, seed);
    const ms = performance.now() - t0;
    const bars = Math.max(2, Math.round(onDevice.config().num_steps / STEPS_PER_BAR));
    const tempo = Math.min(300, Math.max(20, Number(el.sTempo.value) || 120));
    const made = result.notes.map((notes, i) => {
      const rows = notes.map((x) => [x.pitch, x.start, x.end]);
      const label = `On-device melody ${i + 1} · seed ${result.seed}`;
      return onDeviceCard(rows, bars, label, `${rows.length} notes · mood ${temperature} · not saved`, tempo, result.tokens[i]);
    });
    el.ondeviceResults.prepend(...made);
    show(el.ondevicePanel);
    status.textContent = `Made ${n} melod${n === 1 ? "y" : "ies"} in this browser in ${Math.round(ms)} ms (seed ${result.seed}).`;
  } catch (err) {
    status.textContent = `On-device sampling is not available: ${err.message || err}`;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- start

async function loadInstruments() {
  try {
    const list = await api("/api/music/instruments");
    instruments.push(...list);
    for (const select of document.querySelectorAll("select.instrument")) {
      for (const inst of list) {
        const option = make("option", `${inst.program}: ${inst.name}`);
        option.value = String(inst.program);
        select.append(option);
      }
    }
  } catch {
    /* the server default (piano, or the source's) still works */
  }
}

function setSeedRandom(random) {
  el.sSeedRandom.checked = random;
  el.sSeed.disabled = random;
}

function init() {
  Object.assign(el, {
    compose: $("compose-title").parentElement,
    tabs: [$("tab-sample"), $("tab-interpolate"), $("tab-vary")],
    sampleForm: $("sample-form"), interpolateForm: $("interpolate-form"), varyForm: $("vary-form"),
    sN: $("s-n"), sBars: $("s-bars"), sTonic: $("s-tonic"), sMode: $("s-mode"), sTempo: $("s-tempo"),
    sInstrument: $("s-instrument"), sTemp: $("s-temperature"), sDensityOn: $("s-density-on"), sDensity: $("s-density"),
    sChords: $("s-chords"), sSeed: $("s-seed"), sSeedRandom: $("s-seed-random"),
    iStart: $("i-start"), iEnd: $("i-end"), iSteps: $("i-steps"), iInstrument: $("i-instrument"), iTemp: $("i-temperature"),
    vSource: $("v-source"), vSim: $("v-similarity"), vN: $("v-n"), vTemp: $("v-temperature"),
    picks: [...document.querySelectorAll("select.melody-pick")],
    midiFile: $("midi-file"), uploads: $("uploads"), uploadError: $("upload-error"),
    jobs: $("jobs"), jobsEmpty: $("jobs-empty"), gallery: $("gallery"), galleryEmpty: $("gallery-empty"),
    galleryError: $("gallery-error"), loadMore: $("load-more"),
    ondeviceButton: $("ondevice-sample"), ondeviceStatus: $("ondevice-status"), ondevicePanel: $("ondevice-panel"),
    ondeviceResults: $("ondevice-results"), ondeviceInterpolate: $("ondevice-interpolate"),
    ondevicePick: $("ondevice-pick"), ondeviceSteps: $("od-steps"),
    tokenDialog: $("token-dialog"), tokenInput: $("token-input"), tokenError: $("token-error"), forgetToken: $("forget-token"),
  });

  setTokenPrompt((wrong) => askForToken(el, wrong));
  show(el.forgetToken, hasToken());
  onTokenChange((token) => show(el.forgetToken, Boolean(token)));
  el.forgetToken.addEventListener("click", () => {
    setToken("");
    window.location.reload();
  });

  for (const tonic of TONICS) {
    const option = make("option", tonic.replace("#", "♯").replace(/^([A-G])b$/, "$1♭"));
    option.value = tonic;
    el.sTonic.append(option);
  }
  wireTabs();
  rangeOutput(el.sTemp);
  rangeOutput(el.iTemp);
  rangeOutput(el.vSim);
  rangeOutput(el.vTemp);
  el.sDensityOn.addEventListener("change", () => {
    el.sDensity.disabled = !el.sDensityOn.checked;
  });
  el.sSeedRandom.addEventListener("change", () => {
    setSeedRandom(el.sSeedRandom.checked);
    if (!el.sSeedRandom.checked) el.sSeed.focus();
  });
  el.sampleForm.addEventListener("submit", (e) => submit(e, "sample"));
  el.interpolateForm.addEventListener("submit", (e) => submit(e, "interpolate"));
  el.varyForm.addEventListener("submit", (e) => submit(e, "vary"));
  for (const form of [el.sampleForm, el.interpolateForm, el.varyForm]) {
    form.addEventListener("input", (event) => {
      if (event.target.getAttribute && event.target.getAttribute("aria-invalid")) event.target.removeAttribute("aria-invalid");
    });
  }
  el.midiFile.addEventListener("change", uploadMidi);
  el.loadMore.addEventListener("click", () => loadGallery(true));
  el.ondeviceButton.addEventListener("click", sampleOnDevice);
  el.ondeviceInterpolate.addEventListener("click", interpolateOnDevice);
  $("i-ondevice").addEventListener("click", interpolateGalleryOnDevice);

  // Offline shell + on-device model cache (sw.js); the page keeps composing on this device without a server.
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }

  // Instruments first: a 401 there asks for the token once, and the gallery then loads with it.
  loadInstruments().then(() => loadGallery()).finally(() => {
    document.body.dataset.ready = "true";
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
