// The image studio page: the form, PNG settings and drag and drop, the image editor (editor.js) and the
// form's add-ons (customise.js); its jobs, gallery and provenance checks use the shared job card, gallery and
// verify modules. Every string from a user or the server goes into the
// page through textContent or an attribute, never through innerHTML.

import { api, detailLines, uploadForm } from "./api.js";
import { Customise } from "./customise.js";
import { Editor } from "./editor.js";
import { cardError, Gallery, wireDownload } from "./gallery.js";
import { startJobCard } from "./jobcard.js";
import { make, onReady, registerServiceWorker, show, wireToken } from "./ui.js";
import { wireVerifyButton, wireVerifyFile } from "./verify.js";

const SAMPLER_NAMES = { ddim: "DDIM", euler: "Euler", euler_a: "Euler a", dpmpp_2m: "DPM++ 2M", lcm: "LCM" };
const NUMBER_FIELDS = ["steps", "guidance", "width", "height"];

const $ = (id) => document.getElementById(id);
const el = {};
const styles = new Map();
let gallery = null;
let editor = null;
let customise = null;

// ---------------------------------------------------------------- form

function setSeedRandom(random) {
  el.seedRandom.checked = random;
  el.seed.disabled = random;
}

function describeStyle() {
  const style = styles.get(el.style.value);
  if (!style) {
    el.styleDescription.textContent = "Your prompt as written.";
    return;
  }
  const s = style.suggested || {};
  const bits = [];
  const model = currentModel();
  const fixed = model && model.format === "builtin" ? model.defaults || {} : null;
  if (fixed && fixed.width) bits.push(`${fixed.width}×${fixed.height} (the built-in model's size)`);
  else if (s.width && s.height) bits.push(`${s.width}×${s.height}`);
  if (s.steps) bits.push(`${s.steps} steps`);
  if (s.guidance !== undefined && s.guidance !== null) bits.push(`guidance ${s.guidance}`);
  if (s.sampler) bits.push(SAMPLER_NAMES[s.sampler] || s.sampler);
  if (s.tile) bits.push("seamless tile");
  el.styleDescription.textContent = style.description + (bits.length ? ` Suggests ${bits.join(", ")}.` : "");
}

function numberValue(input) {
  if (input.validity && input.validity.badInput) return { error: `${input.name}: not a number` };
  const raw = input.value.trim();
  if (raw === "") return {};
  const value = Number(raw);
  if (!Number.isFinite(value)) return { error: `${input.name}: not a number` };
  return { value };
}

/** The request body: only what the user set, so that the server picks style and model defaults. */
function readForm() {
  const body = { prompt: el.prompt.value };
  const errors = [];
  if (el.negative.value.trim()) body.negative_prompt = el.negative.value;
  if (el.style.value) body.style = el.style.value;
  if (el.model.value) body.model = el.model.value;
  if (el.sampler.value) body.sampler = el.sampler.value;
  if (el.tile.checked) body.tile = true;
  if (!el.seedRandom.checked) {
    const seed = numberValue(el.seed);
    if (seed.error) errors.push(seed.error);
    else if (seed.value !== undefined) body.seed = seed.value;
  }
  for (const name of NUMBER_FIELDS) {
    const result = numberValue(el[name]);
    if (result.error) errors.push(result.error);
    else if (result.value !== undefined) body[name] = result.value;
  }
  const batch = numberValue(el.batch);
  if (batch.error) errors.push(batch.error);
  else if (batch.value !== undefined) body.batch = batch.value;
  return { body, errors };
}

function clearMarks() {
  for (const root of [el.form, el.editor]) {
    for (const node of root.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }
}

function clearFormError() {
  el.formError.replaceChildren();
  show(el.formError, false);
  clearMarks();
}

/** The input a field path names ("steps", "outpaint.left", "controlnets.0.end"), or the nearest one above. */
function findField(path) {
  const parts = path.split(".");
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join(".");
    let node = document.querySelector(`[data-field="${CSS.escape(key)}"]`);
    if (!node && n === 1) node = el.form.elements.namedItem(key);
    if (!node || !node.setAttribute) continue;
    if (node.matches("fieldset, li")) node = node.querySelector("input, select") || node;
    return node;
  }
  return null;
}

/** Mark the inputs the error lines name, open what hides them, and focus the first. */
function markFields(paths) {
  let first = null;
  for (const path of paths) {
    const input = findField(path);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    const details = input.closest("details");
    if (details) details.open = true;
    first = first || input;
  }
  if (first) first.focus();
}

function errorList(box, lines) {
  box.replaceChildren();
  if (lines.length === 1) {
    box.append(make("p", lines[0]));
  } else {
    const list = make("ul");
    for (const line of lines) list.append(make("li", line));
    box.append(list);
  }
  show(box);
}

function showFormError(lines, fields = []) {
  clearFormError();
  errorList(el.formError, lines);
  markFields(fields);
}

function fieldsFromLines(lines) {
  return lines.map((line) => /^([a-z_][a-z0-9_.]*)[:]/.exec(line)).filter(Boolean).map((m) => m[1]);
}

/** An API failure as lines and the field paths they name. */
function failure(err) {
  const lines = err.detail !== undefined ? detailLines(err.detail) : [String(err.message || err)];
  const named = fieldsFromLines(lines);
  return { lines, fields: named.length ? named : err.fields || [] };
}

function selectIfPresent(select, value) {
  const wanted = value === null || value === undefined ? "" : String(value);
  const found = [...select.options].some((o) => o.value === wanted);
  select.value = found ? wanted : "";
  return found;
}

/** Fill the form from stored parameters; `origin` says where they came from. */
function fillForm(params, origin) {
  clearFormError();
  const notes = [];
  el.prompt.value = params.prompt ?? "";
  el.negative.value = params.negative_prompt ?? "";
  if (!selectIfPresent(el.style, params.style)) notes.push(`style “${params.style}” is not available here`);
  if (params.model && !selectIfPresent(el.model, params.model)) {
    notes.push(`model “${params.model}” is not installed here; the server default will be used`);
  } else if (!params.model) {
    el.model.value = "";
  }
  if (params.sampler && !selectIfPresent(el.sampler, params.sampler)) notes.push(`unknown sampler “${params.sampler}”`);
  if (!params.sampler) el.sampler.value = "";
  if (Number.isInteger(params.seed)) {
    setSeedRandom(false);
    el.seed.value = String(params.seed);
  } else {
    setSeedRandom(true);
    el.seed.value = "";
  }
  for (const name of NUMBER_FIELDS) el[name].value = params[name] ?? "";
  el.batch.value = params.batch ?? 1;
  el.tile.checked = Boolean(params.tile);
  if (customise) notes.push(...customise.restore(params));
  el.advanced.open = true;
  describeStyle();
  el.source.textContent = origin + (notes.length ? ` (${notes.join("; ")})` : "") + ".";
  el.source.classList.remove("error");
  show(el.source);
  el.prompt.focus({ preventScroll: true });
  el.form.scrollIntoView({ block: "start", behavior: "smooth" });
}

function resetForm() {
  el.form.reset();
  setSeedRandom(true);
  clearFormError();
  show(el.source, false);
  describeStyle();
}

/** The POST /api/images body: the form, its add-ons, and with `edit` the editor's picture, mask and outpaint
 *  (the mask is uploaded here). Returns {body} or {errors}. */
async function buildBody(edit) {
  const { body, errors } = readForm();
  errors.push(...customise.check(edit));
  if (edit) errors.push(...editor.check());
  if (errors.length) return { errors };
  Object.assign(body, customise.fields(edit));
  if (edit) Object.assign(body, await editor.fields(body));
  return { body };
}

async function submitForm(event) {
  event.preventDefault();
  clearFormError();
  el.generate.disabled = true;
  try {
    const { body, errors } = await buildBody(false);
    if (errors) {
      showFormError(errors, fieldsFromLines(errors));
      return;
    }
    const answer = await api("/api/images", { method: "POST", json: body });
    startJob(answer.job_id, answer.params);
  } catch (err) {
    const { lines, fields } = failure(err);
    showFormError(lines, fields);
  } finally {
    el.generate.disabled = false;
  }
}

/** The editor's Run: the form's settings with the editor's picture and mask. Errors show beside the Run button;
 *  the mask and every field stay as they were. */
async function runEdit() {
  clearFormError();
  editor.showError([]);
  el.edRun.disabled = true;
  try {
    const { body, errors } = await buildBody(true);
    if (errors) {
      editor.showError(errors);
      markFields(fieldsFromLines(errors));
      return;
    }
    const answer = await api("/api/images", { method: "POST", json: body });
    startJob(answer.job_id, answer.params);
  } catch (err) {
    const { lines, fields } = failure(err);
    editor.showError(lines);
    markFields(fields);
  } finally {
    el.edRun.disabled = false;
  }
}

/** Open a gallery image in the editor; an empty prompt takes the image's prompt and model. */
async function editImage(item, node) {
  const p = item.params || {};
  cardError(node, "");
  try {
    await editor.openAsset(item.id, item.url, `Gallery image “${(p.prompt || "untitled").slice(0, 60)}”, seed ${item.seed ?? p.seed ?? "?"}`);
  } catch (err) {
    cardError(node, `Could not open it in the editor: ${err.message}`);
    return;
  }
  if (!el.prompt.value.trim() && p.prompt) {
    el.prompt.value = p.prompt;
    el.negative.value = p.negative_prompt || "";
    if (p.model && selectIfPresent(el.model, p.model)) describeModel();
  }
  editor.reveal();
}

async function editUpload() {
  const file = el.editFile.files[0];
  if (!file) return;
  el.editFileError.textContent = "";
  show(el.editFileError, false);
  try {
    await editor.openFile(file);
    editor.reveal();
  } catch (err) {
    el.editFileError.textContent = `${file.name}: ${err.message}`;
    show(el.editFileError);
  } finally {
    el.editFile.value = "";
  }
}

/** Variations of a gallery image in one click: img2img from it at a low strength, two new seeds. */
async function variations(item, node) {
  const p = item.params || {};
  const body = { prompt: p.prompt || "variation", init_image: item.id, strength: 0.35, batch: 2 };
  for (const key of ["negative_prompt", "style", "model", "steps", "guidance", "width", "height", "sampler"]) {
    if (p[key] !== undefined && p[key] !== null && p[key] !== "") body[key] = p[key];
  }
  // img2img runs strength x steps of them: keep at least one.
  if (body.steps && body.steps * body.strength < 1) body.steps = Math.ceil(1 / body.strength);
  try {
    const answer = await api("/api/images", { method: "POST", json: body });
    startJob(answer.job_id, answer.params);
  } catch (err) {
    cardError(node, err.message);
  }
}

/** "Upscale ×2" on a gallery image: through the first upscaler model installed (ESRGAN and the like, see
 *  the Models page), else Lanczos; the result is a new gallery image. */
async function upscale(item, node) {
  try {
    const models = await api("/api/models?kind=upscaler");
    const body = { image: item.id, scale: 2, upscaler: models.length ? models[0].id : "lanczos" };
    const answer = await api("/api/images/upscale", { method: "POST", json: body });
    startJob(answer.job_id, answer.params);
  } catch (err) {
    cardError(node, err.message);
  }
}

// ---------------------------------------------------------------- jobs

function paramsSummary(p) {
  if (p.op === "upscale") return `upscale ×${p.scale} (${p.upscaler}) to ${p.width}×${p.height}`;
  const parts = [];
  if (p.model) parts.push(p.model);
  if (p.style) parts.push(`style ${p.style}`);
  parts.push(`seed ${p.seed}`);
  parts.push(`${p.width}×${p.height}`);
  parts.push(`${p.steps} steps`);
  parts.push(`guidance ${p.guidance}`);
  parts.push(SAMPLER_NAMES[p.sampler] || p.sampler);
  if (p.batch > 1) parts.push(`batch ${p.batch}`);
  if (p.tile) parts.push("seamless tile");
  if (p.init_image) parts.push(`from an image, strength ${p.strength}`);
  if (p.mask) parts.push(`inpaint${p.inpaint_area === "masked" ? " (only masked)" : ""}, mask blur ${p.mask_blur}`);
  if (p.outpaint) parts.push(`outpaint ${["left", "right", "top", "bottom"].map((s) => p.outpaint[s] || 0).join("/")}`);
  if (p.hires) parts.push(`hires ×${p.hires.scale} (${p.hires.upscaler})`);
  for (const lora of p.loras || []) parts.push(`LoRA ${lora.id} ${lora.weight}`);
  for (const unit of p.controlnets || []) parts.push(`ControlNet ${unit.model} (${unit.preprocessor})`);
  return parts.join(" · ");
}

async function startJob(jobId, params) {
  const title = params.op === "upscale" ? `Upscale ×${params.scale}` : params.prompt;
  const quoted = `“${title.slice(0, 60)}”`;
  const job = await startJobCard({
    list: el.jobs, empty: el.jobsEmpty, jobId, title, summary: `Resolved: ${paramsSummary(params)}`,
    label: quoted, noun: ["image", "images"],
  });
  if (job && job.status === "succeeded") {
    await gallery.add(job.assets);
    markBatches();
  }
}

// ---------------------------------------------------------------- gallery

function makeCard(item) {
  const p = item.params || {};
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  if (item.job_id) node.dataset.jobId = item.job_id;
  const seed = item.seed ?? p.seed;
  const img = node.querySelector(".card-img");
  img.alt = `Generated image: ${p.prompt || "untitled"}`;
  if (p.width && p.height) {
    img.width = p.width;
    img.height = p.height;
  }
  gallery.setImage(img, item);
  const zoom = node.querySelector(".card-zoom");
  zoom.setAttribute("aria-label", `Enlarge the image with seed ${seed}`);
  zoom.addEventListener("click", () => openViewer(img, p, seed));
  const promptNode = node.querySelector(".card-prompt");
  promptNode.textContent = p.prompt || "";
  // Every card has the same button names; the prompt tells a screen reader which image they act on.
  promptNode.id = `prompt-${item.id}`;
  for (const control of node.querySelectorAll(".card-actions > *")) control.setAttribute("aria-describedby", promptNode.id);
  node.querySelector(".m-seed").textContent = seed ?? "?";
  node.querySelector(".m-size").textContent = p.width && p.height ? `${p.width}×${p.height}` : "?";
  node.querySelector(".m-sampler").textContent = SAMPLER_NAMES[p.sampler] || p.sampler || "?";
  node.querySelector(".m-steps").textContent = p.steps ?? "?";

  const download = node.querySelector(".card-download");
  const name = `genstudio-${item.id.slice(0, 12)}.png`;
  wireDownload(download, `${item.url}?download=true`, name, node);
  download.setAttribute("aria-label", `Download image with seed ${seed}`);

  node.querySelector(".card-variations").addEventListener("click", () => variations(item, node));
  node.querySelector(".card-edit").addEventListener("click", () => editImage(item, node));
  node.querySelector(".card-upscale").addEventListener("click", () => upscale(item, node));
  if (p.op === "upscale") {  // an upscaled image: no seed or sampler of its own
    node.querySelector(".card-prompt").textContent = `Upscaled ×${p.scale} (${p.upscaler})`;
    node.querySelector(".m-sampler").textContent = p.upscaler;
  }
  node.querySelector(".card-reuse").addEventListener("click", () => {
    fillForm({ ...p, seed, batch: 1 }, `Settings from the gallery image with seed ${seed}`);
  });
  wireVerifyButton(node.querySelector(".card-verify"), node.querySelector(".verify-result"), item.url, name);
  node.querySelector(".card-delete").addEventListener("click", () => {
    const prompt = p.prompt || "this image";
    gallery.remove(item, node, `Delete the image “${prompt.slice(0, 80)}” (seed ${item.seed})? This cannot be undone.`);
  });
  return node;
}

/** Results of one job (a batch) side by side, each labelled "Batch 2/4": the gallery keeps them adjacent
 *  (newest first, in order), this names the group. */
function markBatches() {
  const cards = [...el.gallery.querySelectorAll(".card")];
  const byJob = new Map();
  for (const card of cards) {
    const job = card.dataset.jobId;
    if (job) byJob.set(job, [...(byJob.get(job) || []), card]);
  }
  for (const group of byJob.values()) {
    group.forEach((card, i) => {
      const label = card.querySelector(".card-batch");
      label.textContent = group.length > 1 ? `Batch ${i + 1}/${group.length}` : "";
      show(label, group.length > 1);
      card.classList.toggle("in-batch", group.length > 1);
    });
  }
}

/** The image at full size in a dialog (Escape or Close to leave). */
function openViewer(img, p, seed) {
  const viewer = $("viewer");
  const big = $("viewer-img");
  big.src = img.currentSrc || img.src;
  big.alt = img.alt;
  $("viewer-caption").textContent = `${p.prompt || ""} · seed ${seed ?? "?"} · ${p.width}×${p.height}`;
  if (typeof viewer.showModal === "function") viewer.showModal();
  else viewer.setAttribute("open", "");
  $("viewer-close").focus();
}

// ---------------------------------------------------------------- settings from a PNG

async function loadParamsFrom(file) {
  if (!file) return;
  el.source.textContent = `Reading settings from ${file.name}…`;
  el.source.classList.remove("error");
  show(el.source);
  try {
    const answer = await api("/api/images/params", { method: "POST", body: uploadForm(file) });
    const kind = answer.source === "genstudio" ? "genstudio metadata" : "A1111-style parameters";
    fillForm(answer.params || {}, `Settings loaded from ${file.name} (${kind})`);
  } catch (err) {
    el.source.textContent = `${file.name}: ${err.message}`;
    el.source.classList.add("error");
  }
}

// ---------------------------------------------------------------- drag and drop

function hasFiles(event) {
  return Boolean(event.dataTransfer && [...event.dataTransfer.types].includes("Files"));
}

function wireDrop() {
  let depth = 0;
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    show(el.dropOverlay);
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) show(el.dropOverlay, false);
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    show(el.dropOverlay, false);
    loadParamsFrom(event.dataTransfer.files[0]);
  });
}

// ---------------------------------------------------------------- start

async function loadStyles() {
  try {
    for (const style of await api("/api/styles")) styles.set(style.id, style);
  } catch (err) {
    el.styleDescription.textContent = `Styles are unavailable: ${err.message}`;
  }
  arrangeStyles();
}

/** The model that will run: the one picked, else the server's default. */
function currentModel() {
  return models.get(el.model.value) || [...models.values()].find((m) => m.default) || null;
}

/** The style list for the model that will run: the styles made for it first, the rest marked. */
function arrangeStyles() {
  const chosen = el.style.value;
  const family = currentModel()?.family === "builtin" ? "builtin" : "sd";
  const groups = new Map();
  const group = (label) => {
    if (!groups.has(label)) {
      const node = document.createElement("optgroup");
      node.label = label;
      groups.set(label, node);
    }
    return groups.get(label);
  };
  if (family === "builtin") group("Suit the built-in model");
  for (const style of styles.values()) {
    const suits = (style.suits || ["sd"]).includes(family);
    const option = make("option", suits || family === "sd" ? style.name : `${style.name} (for real models)`);
    option.value = style.id;
    option.title = style.description;
    group(family === "builtin" && suits ? "Suit the built-in model" : style.category).append(option);
  }
  el.style.replaceChildren(el.style.options[0] || make("option", "No style"), ...groups.values());
  el.style.options[0].value = "";
  el.style.value = styles.has(chosen) ? chosen : "";
  describeStyle();
}

const models = new Map();

async function loadModels() {
  try {
    for (const model of await api("/api/models?kind=image")) {
      models.set(model.id, model);
      const option = make("option", model.name || model.id);
      option.value = model.id;
      if (model.description) option.title = model.description;
      el.model.append(option);
    }
  } catch {
    /* the server default still works */
  }
  describeModel();
}

/** Say where the user types what the built-in model can draw, while it is the one that will run. */
function describeModel() {
  const chosen = currentModel();
  show(el.modelNote, Boolean(chosen && chosen.family === "builtin"));
  arrangeStyles();
  if (customise) customise.familyNotes();
}

function init() {
  Object.assign(el, {
    form: $("image-form"), prompt: $("prompt"), negative: $("negative_prompt"), style: $("style"),
    styleDescription: $("style-description"), advanced: $("advanced"), seed: $("seed"), seedRandom: $("seed-random"),
    steps: $("steps"), guidance: $("guidance"), width: $("width"), height: $("height"), batch: $("batch"),
    sampler: $("sampler"), model: $("model"), tile: $("tile"), source: $("settings-source"),
    formError: $("form-error"), generate: $("generate"), jobs: $("jobs"), jobsEmpty: $("jobs-empty"),
    gallery: $("gallery"), galleryEmpty: $("gallery-empty"), galleryError: $("gallery-error"),
    loadMore: $("load-more"), paramsFile: $("params-file"), verifyFile: $("verify-file"),
    verifyFileResult: $("verify-file-result"), dropOverlay: $("drop-overlay"), tokenDialog: $("token-dialog"),
    tokenInput: $("token-input"), tokenError: $("token-error"), forgetToken: $("forget-token"),
    modelNote: $("model-note"), editor: $("editor"), edRun: $("ed-run"), editFile: $("edit-file"),
    editFileError: $("edit-file-error"),
  });

  wireToken(el);
  gallery = new Gallery({
    list: el.gallery, empty: el.galleryEmpty, error: el.galleryError, more: el.loadMore,
    studio: "image", kind: "image", makeCard,
  });

  editor = new Editor(el.editor);
  customise = new Customise({ editor, modelFamily: () => currentModel()?.family || null });
  el.edRun.addEventListener("click", runEdit);
  el.editFile.addEventListener("change", editUpload);
  el.form.addEventListener("submit", submitForm);
  el.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      el.form.requestSubmit();
    }
  });
  el.form.addEventListener("input", (event) => {
    if (event.target.getAttribute && event.target.getAttribute("aria-invalid")) event.target.removeAttribute("aria-invalid");
  });
  $("reset-form").addEventListener("click", resetForm);
  el.seedRandom.addEventListener("change", () => {
    setSeedRandom(el.seedRandom.checked);
    if (!el.seedRandom.checked) el.seed.focus();
  });
  el.style.addEventListener("change", describeStyle);
  el.model.addEventListener("change", describeModel);
  for (const example of el.modelNote.querySelectorAll(".example")) {
    example.addEventListener("click", () => {
      el.prompt.value = example.textContent;
      el.prompt.focus();
    });
  }
  el.paramsFile.addEventListener("change", async () => {
    await loadParamsFrom(el.paramsFile.files[0]);
    el.paramsFile.value = "";
  });
  wireVerifyFile(el.verifyFile, el.verifyFileResult);
  wireDrop();
  registerServiceWorker();

  // Styles first: a 401 there asks for the token once, and the rest then run with it.
  el.loadMore.addEventListener("click", () => setTimeout(markBatches, 0));
  loadStyles().then(() => Promise.all([loadModels(), customise.load(), gallery.load().then(markBatches)])).finally(() => {
    document.body.dataset.ready = "true";
  });
}

onReady(init);
