// The Sample, Interpolate, Vary, Continue and Harmonize forms: tabs, reading the fields, field errors, each
// submit as a job on a shared job card, and the instrument lists.

import { api, detailLines } from "../api.js";
import { startJobCard } from "../jobcard.js";
import { make, show } from "../ui.js";
import { $, el, short, trackOf } from "./page.js";

/** The live number beside a range input (its #<id>-out). */
function rangeOutput(input, digits = 2) {
  const out = $(`${input.id}-out`);
  const update = () => {
    out.textContent = Number(input.value).toFixed(digits);
  };
  input.addEventListener("input", update);
  update();
}

/** Show one tab's form and hide the others. */
export function selectTab(name, focus = false) {
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
  if (el.sAccompaniment.checked) body.accompaniment = true;
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

/** The fields every form from a source melody shares: source (with its track), n, tempo, instrument, seed. */
function readFromSource(fields, noun, errors) {
  const body = { source: fields.source.value, temperature: Number(fields.temp.value) };
  if (!body.source) errors.push(`source: choose a melody to ${noun}`);
  const track = trackOf(body.source);
  if (track !== undefined) body.track = track;
  const n = numberOf(fields.n, errors);
  if (n !== undefined) body.n = n;
  const tempo = numberOf(fields.tempo, errors);
  if (tempo !== undefined) body.tempo = tempo;
  instrumentOf(fields.instrument, body);
  const seed = numberOf(fields.seed, errors);
  if (seed !== undefined) body.seed = seed;
  return body;
}

function readContinue() {
  const errors = [];
  const body = readFromSource({ source: el.cSource, temp: el.cTemp, n: el.cN, tempo: el.cTempo,
    instrument: el.cInstrument, seed: el.cSeed }, "continue", errors);
  body.bars = Number(el.cBars.value);
  if (el.cAccompaniment.checked) body.accompaniment = true;
  return { body, errors };
}

function readHarmonize() {
  const errors = [];
  const body = readFromSource({ source: el.hSource, temp: el.hTemp, n: el.hN, tempo: el.hTempo,
    instrument: el.hInstrument, seed: el.hSeed }, "harmonize", errors);
  body.voices = el.hVoices.filter((box) => box.checked).map((box) => box.value);
  if (!body.voices.length) errors.push("voices: choose at least one voice to write");
  return { body, errors };
}

export function clearFormError(form) {
  const box = form.querySelector(".form-error");
  box.replaceChildren();
  show(box, false);
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}


export function showFormError(form, lines, fields = []) {
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
    let input = form.elements.namedItem(name === "key" ? "key" : name);
    if (input instanceof RadioNodeList) input = input[0]; // a group of checkboxes: mark the first
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
  if (op === "continue") return `Continue ${short(p.source)} by ${p.bars} bars ×${p.n}`;
  if (op === "harmonize") return `Harmonize ${short(p.source)} ×${p.n}`;
  return `Vary ${short(p.source)} ×${p.n}`;
}

function paramsSummary(p) {
  const parts = [];
  if (p.key) parts.push(p.key);
  if (p.chords) parts.push(`chords ${p.chords}`);
  if (p.density !== null && p.density !== undefined) parts.push(`density ${p.density}`);
  if (p.tempo) parts.push(`${Math.round(p.tempo)} BPM`);
  if (p.similarity !== undefined) parts.push(`similarity ${p.similarity}`);
  if (Array.isArray(p.voices)) parts.push(`voices ${p.voices.join(", ")}`);
  if (p.accompaniment) parts.push("with a backing");
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

/** A form's submit: starts the job `op`, shows it on a job card and resolves to its results (asset ids);
 *  `onResults` gets them once the job succeeded. */
async function submit(event, op, onResults) {
  event.preventDefault();
  const form = event.currentTarget;
  const read = { sample: readSample, interpolate: readInterpolate, vary: readVary, continue: readContinue,
    harmonize: readHarmonize };
  const { body, errors } = read[op]();
  if (errors.length) {
    showFormError(form, errors, fieldsFromLines(errors));
    return;
  }
  clearFormError(form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  let answer;
  try {
    answer = await api(`/api/music/${op}`, { method: "POST", json: body });
  } catch (err) {
    const lines = err.detail !== undefined ? detailLines(err.detail) : [String(err.message || err)];
    showFormError(form, lines, err.fields && err.fields.length ? err.fields : fieldsFromLines(lines));
    return;
  } finally {
    button.disabled = false;
  }
  const title = describeJob(op, answer.params);
  const job = await startJobCard({
    list: el.jobs, empty: el.jobsEmpty, jobId: answer.job_id, title, summary: paramsSummary(answer.params),
    noun: ["melody", "melodies"], data: { op },
  });
  if (job && job.status === "succeeded") await onResults(job.assets);
}

const TONICS = ["C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B"];

function setSeedRandom(random) {
  el.sSeedRandom.checked = random;
  el.sSeed.disabled = random;
}

/** Wire the five forms; a succeeded job's results go to `onResults(assetIds)`. */
export function wireForms(onResults) {
  for (const tonic of TONICS) {
    const option = make("option", tonic.replace("#", "♯").replace(/^([A-G])b$/, "$1♭"));
    option.value = tonic;
    el.sTonic.append(option);
  }
  // A mode means nothing without a key: with "Model's choice" the model picks both, and the page says so
  // rather than sending a mode that would be ignored.
  const modeFollowsKey = () => {
    el.sMode.disabled = !el.sTonic.value;
    el.sMode.title = el.sTonic.value ? "" : "The model chooses the key and its mode: pick a key to set the mode";
  };
  el.sTonic.addEventListener("change", modeFollowsKey);
  modeFollowsKey();
  wireTabs();
  rangeOutput(el.sTemp);
  rangeOutput(el.iTemp);
  rangeOutput(el.vSim);
  rangeOutput(el.vTemp);
  rangeOutput(el.cTemp);
  rangeOutput(el.hTemp);
  for (const box of el.hVoices) {
    box.addEventListener("change", () => el.hVoices.forEach((b) => b.removeAttribute("aria-invalid")));
  }
  el.sDensityOn.addEventListener("change", () => {
    el.sDensity.disabled = !el.sDensityOn.checked;
  });
  el.sSeedRandom.addEventListener("change", () => {
    setSeedRandom(el.sSeedRandom.checked);
    if (!el.sSeedRandom.checked) el.sSeed.focus();
  });
  el.sampleForm.addEventListener("submit", (e) => submit(e, "sample", onResults));
  el.interpolateForm.addEventListener("submit", (e) => submit(e, "interpolate", onResults));
  el.varyForm.addEventListener("submit", (e) => submit(e, "vary", onResults));
  el.continueForm.addEventListener("submit", (e) => submit(e, "continue", onResults));
  el.harmonizeForm.addEventListener("submit", (e) => submit(e, "harmonize", onResults));
  for (const form of [el.sampleForm, el.interpolateForm, el.varyForm, el.continueForm, el.harmonizeForm]) {
    form.addEventListener("input", (event) => {
      if (event.target.getAttribute && event.target.getAttribute("aria-invalid")) event.target.removeAttribute("aria-invalid");
    });
  }
}

/** The instrument lists of every form, from the server (General MIDI programs). */
export async function loadInstruments() {
  try {
    const list = await api("/api/music/instruments");
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
