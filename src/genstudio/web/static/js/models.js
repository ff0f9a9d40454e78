// The Models page: the installed image models (family, size, source, default; remove, make default), a
// download from the hub as a job with a progress bar, and a short catalogue of suggested models. Every string
// from a user or the server goes into the page through textContent, never innerHTML.

import { api, detailLines } from "./api.js";
import { startJobCard } from "./jobcard.js";
import { make, onReady, registerServiceWorker, show, wireToken } from "./ui.js";

// Sizes: the full-precision component weights a pull fetches (about; the hub's own figures may move).
const CATALOGUE = [
  { repo: "stabilityai/sd-turbo", name: "SD-Turbo", family: "SD 2.1", size: "about 5.2 GB",
    licence: "Stability AI Non-Commercial Research Community License",
    note: "One step at 512×512, guidance 0: the quickest real model on a CPU." },
  { repo: "stabilityai/sdxl-turbo", name: "SDXL-Turbo", family: "SDXL", size: "about 13.9 GB",
    licence: "Stability AI Non-Commercial Research Community License",
    note: "One to four steps at 512×512; wants a GPU with 8 GB or more." },
  { repo: "stable-diffusion-v1-5/stable-diffusion-v1-5", name: "Stable Diffusion 1.5", family: "SD 1.5",
    size: "about 5.5 GB", licence: "CreativeML OpenRAIL-M",
    note: "The classic 512×512 base that most LoRAs and ControlNets were made for." },
  { repo: "stabilityai/stable-diffusion-xl-base-1.0", name: "SDXL base 1.0", family: "SDXL", size: "about 13.9 GB",
    licence: "CreativeML Open RAIL++-M", note: "1024×1024 base; a GPU with 10 GB or more, or much patience." },
];

const $ = (id) => document.getElementById(id);
const el = {};

function gigabytes(bytes) {
  if (!bytes) return "";
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GB` : `${Math.max(1, Math.round(bytes / 2 ** 20))} MB`;
}

function cell(text, label) {
  const td = make("td", text);
  if (label) td.dataset.label = label;
  return td;
}

function showError(box, err) {
  box.textContent = detailLines(err.detail).join("\n") || err.message;
  show(box);
}

async function act(button, run) {
  button.disabled = true;
  show(el.error, false);
  try {
    await run();
    await loadModels();
  } catch (err) {
    showError(el.error, err);
    button.disabled = false;
  }
}

function modelRow(model) {
  const tr = document.createElement("tr");
  tr.dataset.modelId = model.id;
  const name = make("td", model.name || model.id);
  name.dataset.label = "Model";
  if (model.default) name.append(" ", make("span", "default", "badge"));
  tr.append(name, cell(model.family || "", "Family"), cell(gigabytes(model.size_bytes), "Size"),
    cell(model.source || model.format || "", "Source"));
  const actions = make("td", "", "actions");
  if (!model.default) {
    const makeDefault = make("button", "Make default");
    makeDefault.type = "button";
    makeDefault.setAttribute("aria-label", `Make ${model.name || model.id} the default model`);
    makeDefault.addEventListener("click", () => act(makeDefault, () =>
      api(`/api/models/${encodeURIComponent(model.id)}/default`, { method: "POST" })));
    actions.append(makeDefault);
  }
  if (model.format !== "builtin") {
    const remove = make("button", "Remove", "danger");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${model.name || model.id}`);
    remove.addEventListener("click", () => {
      if (!window.confirm(`Remove ${model.name || model.id}? Downloaded files are deleted.`)) return;
      act(remove, () => api(`/api/models/${encodeURIComponent(model.id)}`, { method: "DELETE" }));
    });
    actions.append(" ", remove);
  }
  tr.append(actions);
  return tr;
}

const ADDON_KINDS = { lora: "LoRA", embedding: "embedding", controlnet: "ControlNet", upscaler: "upscaler" };

function addonRow(model) {
  const tr = document.createElement("tr");
  tr.dataset.modelId = model.id;
  tr.append(cell(model.name || model.id, "Add-on"), cell(ADDON_KINDS[model.kind] || model.kind, "Kind"),
    cell(model.family === "any" ? "any model" : model.family || "", "For"), cell(gigabytes(model.size_bytes), "Size"));
  const actions = make("td", "", "actions");
  const remove = make("button", "Remove", "danger");
  remove.type = "button";
  remove.setAttribute("aria-label", `Remove ${model.name || model.id}`);
  remove.addEventListener("click", () => {
    if (!window.confirm(`Remove ${model.name || model.id}? Your own file is kept.`)) return;
    act(remove, () => api(`/api/models/${encodeURIComponent(model.id)}`, { method: "DELETE" }));
  });
  actions.append(remove);
  tr.append(actions);
  return tr;
}

async function loadModels() {
  try {
    const all = await api("/api/models");
    el.models.replaceChildren(...all.filter((m) => m.kind === "image").map(modelRow));
    const addons = all.filter((m) => m.kind in ADDON_KINDS);
    el.addons.replaceChildren(...addons.map(addonRow));
    show(el.addonsEmpty, !addons.length);
  } catch (err) {
    showError(el.error, err);
  }
}

async function loadDevice() {
  try {
    const h = await api("/api/health");
    el.device.textContent = h.device ? `Image models run on ${h.device} in ${h.dtype} (memory mode ${h.memory}).` : "";
  } catch {
    /* not essential */
  }
}

async function pull(repo, name) {
  show(el.pullError, false);
  el.pullButton.disabled = true;
  try {
    const body = { repo, kind: "image" };
    if (name) body.name = name;
    const accepted = await api("/api/models/pull", { method: "POST", json: body });
    el.pullButton.disabled = false;
    const job = await startJobCard({
      list: el.jobs, jobId: accepted.job_id, title: `Download ${repo}`, summary: `as ${accepted.model_id}`,
      label: `the download of ${repo}`, noun: null,
    });
    if (job && job.status === "succeeded") await loadModels();
  } catch (err) {
    el.pullButton.disabled = false;
    showError(el.pullError, err);
  }
}

function catalogueItem(entry) {
  const li = document.createElement("li");
  li.append(make("h3", entry.name), make("p", `${entry.family} · ${entry.size}`, "hint"), make("p", entry.note),
    make("p", `Licence: ${entry.licence}`, "hint"));
  const button = make("button", "Download");
  button.type = "button";
  button.setAttribute("aria-label", `Download ${entry.name} (${entry.size})`);
  button.addEventListener("click", () => {
    el.repo.value = entry.repo;
    pull(entry.repo, "");
  });
  li.append(button);
  return li;
}

function init() {
  Object.assign(el, {
    models: $("models"), addons: $("addons"), addonsEmpty: $("addons-empty"), error: $("models-error"), device: $("device-line"), pullForm: $("pull-form"),
    repo: $("repo"), name: $("pull-name"), pullError: $("pull-error"), pullButton: $("pull"), jobs: $("jobs"),
    catalogue: $("catalogue"), tokenDialog: $("token-dialog"), tokenInput: $("token-input"),
    tokenError: $("token-error"), forgetToken: $("forget-token"),
  });
  wireToken(el);
  el.catalogue.replaceChildren(...CATALOGUE.map(catalogueItem));
  el.pullForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const repo = el.repo.value.trim();
    if (!repo) {
      el.pullError.textContent = "repo: type a repository id, e.g. stabilityai/sd-turbo";
      show(el.pullError);
      el.repo.focus();
      return;
    }
    pull(repo, el.name.value.trim());
  });
  registerServiceWorker();
  Promise.all([loadModels(), loadDevice()]).finally(() => {
    document.body.dataset.ready = "true";
  });
}

onReady(init);
