// The Create form's add-ons: LoRAs with their weights, the hires fix, and ControlNet units (model, control
// image, preprocessor with a preview of its map, weight, start and end). Each adds its fields to a
// POST /api/images body: "loras", "hires", "controlnets".

import { api, errorFrom, rawFetch, uploadForm } from "./api.js";
import { make, show } from "./ui.js";

const $ = (id) => document.getElementById(id);

/** "Add one with genstudio models add FILE --kind lora" as nodes (the command in <code>). */
function howToAdd(kind, lead) {
  return [lead, " Add one with ", make("code", `genstudio models add FILE --kind ${kind}`), "."];
}

function numberOf(input) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const v = Number(raw);
  return Number.isFinite(v) ? v : NaN;
}

/** A clone of template `id` whose [data-id] elements get ids unique to it and whose [data-for] labels point at
 *  them. */
function cloneTemplate(id, prefix) {
  const node = $(id).content.firstElementChild.cloneNode(true);
  for (const part of node.querySelectorAll("[data-id]")) part.id = `${prefix}-${part.dataset.id}`;
  for (const label of node.querySelectorAll("label[data-for]")) label.htmlFor = `${prefix}-${label.dataset.for}`;
  return node;
}

function wireRange(node, name, digits) {
  const input = node.querySelector(`[data-id='${name}']`);
  const out = node.querySelector(`[data-out='${name}']`);
  out.htmlFor = input.id;
  const update = () => {
    out.textContent = Number(input.value).toFixed(digits);
  };
  input.addEventListener("input", update);
  update();
  return input;
}

export class Customise {
  /** editor: the image editor (its picture can be a control image); modelFamily(): the family of the image
   *  model that will run, or null. */
  constructor({ editor, modelFamily }) {
    this.editor = editor;
    this.modelFamily = modelFamily;
    this.loraModels = new Map();
    this.cnModels = [];
    this.counter = 0;
    this.el = {
      loraStatus: $("lora-status"), loraPicker: $("lora-picker"), loraPick: $("lora-pick"), loraAdd: $("lora-add"),
      loras: $("loras"), hiresOn: $("hires-on"), hiresScale: $("hires-scale"), hiresStrength: $("hires-strength"),
      hiresUpscaler: $("hires-upscaler"), hiresSteps: $("hires-steps"), cnStatus: $("cn-status"), cnUnits: $("cn-units"),
      cnAdd: $("cn-add"),
    };
    this.el.loraAdd.addEventListener("click", () => this.addLora(this.el.loraPick.value));
    this.el.hiresOn.addEventListener("change", () => this.toggleHires());
    this.el.cnAdd.addEventListener("click", () => this.addUnit());
    this.toggleHires();
  }

  async load() {
    await Promise.all([this.loadLoras(), this.loadUpscalers(), this.loadControlNets()]);
  }

  // ------------------------------------------------------------ LoRAs

  async loadLoras() {
    const { loraStatus, loraPick } = this.el;
    let list = [];
    try {
      list = await api("/api/models?kind=lora");
    } catch (err) {
      loraStatus.replaceChildren(...howToAdd("lora", `LoRAs could not be listed (${err.message}).`));
      show(this.el.loraPicker, false);
      return;
    }
    loraPick.replaceChildren();
    for (const model of list) {
      this.loraModels.set(model.id, model);
      const option = make("option", model.family ? `${model.name || model.id} (${model.family})` : model.name || model.id);
      option.value = model.id;
      loraPick.append(option);
    }
    if (list.length) loraStatus.textContent = "Each LoRA steers the model by its weight (negative: away from it).";
    else loraStatus.replaceChildren(...howToAdd("lora", "No LoRA is installed yet."));
    show(this.el.loraPicker, list.length > 0);
  }

  addLora(id) {
    const model = this.loraModels.get(id);
    if (!model) return;
    const existing = this.el.loras.querySelector(`[data-lora='${CSS.escape(id)}'] input`);
    if (existing) {
      existing.focus();
      return;
    }
    const node = cloneTemplate("lora-template", `lora${++this.counter}`);
    node.dataset.lora = id;
    const name = model.name || model.id;
    node.querySelector(".lora-label").textContent = `${name} weight`;
    wireRange(node, "weight", 2);
    const remove = node.querySelector(".lora-remove");
    remove.setAttribute("aria-label", `Remove LoRA ${name}`);
    remove.addEventListener("click", () => {
      node.remove();
      this.renumber();
      this.el.loraAdd.focus();
    });
    this.el.loras.append(node);
    this.renumber();
    this.familyNotes();
    node.querySelector("input").focus();
  }

  /** Say when a LoRA was made for another family than the model that will run. */
  familyNotes() {
    const family = this.modelFamily();
    for (const node of this.el.loras.children) {
      const model = this.loraModels.get(node.dataset.lora);
      const note = node.querySelector(".lora-note");
      const other = Boolean(family && model && model.family && model.family !== family);
      note.textContent = other ? `Made for ${model.family} models; the model in use is ${family}.` : "";
      show(note, other);
    }
  }

  // ------------------------------------------------------------ hires fix

  async loadUpscalers() {
    try {
      for (const model of await api("/api/models?kind=upscaler")) {
        const option = make("option", model.name || model.id);
        option.value = model.id;
        this.el.hiresUpscaler.append(option);
      }
    } catch {
      /* latent and lanczos need no model */
    }
  }

  toggleHires() {
    const on = this.el.hiresOn.checked;
    for (const input of [this.el.hiresScale, this.el.hiresStrength, this.el.hiresUpscaler, this.el.hiresSteps]) {
      input.disabled = !on;
    }
  }

  // ------------------------------------------------------------ ControlNet

  async loadControlNets() {
    try {
      this.cnModels = await api("/api/models?kind=controlnet");
    } catch (err) {
      this.el.cnStatus.replaceChildren(...howToAdd("controlnet", `ControlNet models could not be listed (${err.message}).`));
      this.el.cnAdd.disabled = true;
      return;
    }
    if (this.cnModels.length) {
      this.el.cnStatus.textContent = "A unit guides the picture by a control image: its edges, lines or a scribble.";
    } else {
      this.el.cnStatus.replaceChildren(...howToAdd("controlnet", "No ControlNet model is installed yet."));
    }
    this.el.cnAdd.disabled = this.cnModels.length === 0;
  }

  addUnit() {
    const prefix = `cn${++this.counter}`;
    const node = cloneTemplate("cn-template", prefix);
    const part = (id) => node.querySelector(`[data-id='${id}']`);
    const select = part("model");
    for (const model of this.cnModels) {
      const option = make("option", model.family ? `${model.name || model.id} (${model.family})` : model.name || model.id);
      option.value = model.id;
      select.append(option);
    }
    for (const radio of node.querySelectorAll("input[type=radio]")) radio.name = `${prefix}-source`;
    const file = part("file");
    const useUpload = () => {
      const upload = part("src-upload").checked;
      show(file, upload);
      this.unitError(node, "");
    };
    part("src-editor").addEventListener("change", useUpload);
    part("src-upload").addEventListener("change", useUpload);
    if (!this.editor.open) part("src-upload").checked = true;
    useUpload();
    file.addEventListener("change", () => this.uploadControl(node, file));
    wireRange(node, "weight", 2);
    node.querySelector(".cn-remove").addEventListener("click", () => {
      const img = node.querySelector(".cn-preview-img");
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      node.remove();
      this.renumber();
      this.el.cnAdd.focus();
    });
    node.querySelector(".cn-preview").addEventListener("click", () => this.preview(node));
    node.addEventListener("input", (event) => event.target.removeAttribute("aria-invalid"));
    this.el.cnUnits.append(node);
    this.renumber();
    select.focus();
  }

  async uploadControl(node, input) {
    const file = input.files[0];
    delete node.dataset.upload;
    if (!file) return;
    this.unitError(node, "");
    try {
      const answer = await api("/api/uploads", { method: "POST", body: uploadForm(file) });
      if (answer.kind && answer.kind !== "image") throw new Error(`${file.name} is not an image`);
      node.dataset.upload = answer.asset_id;
    } catch (err) {
      this.unitError(node, `${file.name}: ${err.message}`);
    }
  }

  /** The control image of a unit: the editor's picture or the unit's upload (an asset id), or null. */
  controlImage(node) {
    if (node.querySelector("[data-id='src-editor']").checked) return this.editor.assetId;
    return node.dataset.upload || null;
  }

  unitError(node, message) {
    const box = node.querySelector(".cn-error");
    box.textContent = message;
    show(box, Boolean(message));
  }

  /** The preprocessor's map of the control image (POST /api/images/preprocess answers a PNG). */
  async preview(node) {
    const image = this.controlImage(node);
    const preprocessor = node.querySelector("[data-id='preprocessor']").value;
    const img = node.querySelector(".cn-preview-img");
    const button = node.querySelector(".cn-preview");
    if (!image) {
      this.unitError(node, "Open an image in the editor, or choose an upload, first.");
      return;
    }
    this.unitError(node, "");
    button.disabled = true;
    try {
      const response = await rawFetch("/api/images/preprocess", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ image, preprocessor }),
      });
      if (!response.ok) throw await errorFrom(response);
      const old = img.src;
      img.src = URL.createObjectURL(await response.blob());
      img.alt = `Control map of ${node.querySelector(".cn-title").textContent} (${preprocessor})`;
      show(img);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    } catch (err) {
      show(img, false);
      this.unitError(node, `Preview failed: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  /** Titles and the data-field paths that the server's errors name ("controlnets.1.end") follow the order. */
  renumber() {
    [...this.el.cnUnits.children].forEach((node, i) => {
      const title = `ControlNet unit ${i + 1}`;
      node.querySelector(".cn-title").textContent = title;
      node.querySelector(".cn-remove").setAttribute("aria-label", `Remove ${title}`);
      node.querySelector(".cn-preview").setAttribute("aria-label", `Preview the control map of ${title}`);
      node.querySelector("[data-id='file']").setAttribute("aria-label", `Control image file of ${title}`);
      node.dataset.field = `controlnets.${i}`;
      for (const part of node.querySelectorAll("[data-part]")) part.dataset.field = `controlnets.${i}.${part.dataset.part}`;
    });
    [...this.el.loras.children].forEach((node, i) => {
      node.querySelector("input").dataset.field = `loras.${i}.weight`;
    });
  }

  /** Settings read back (a dropped PNG, "Reuse settings"): the LoRAs with their weights and the hires fix.
   *  Returns notes on what could not be restored: a LoRA not installed here, and ControlNet units (a PNG
   *  names their model and settings, not their control image). */
  restore(params) {
    const notes = [];
    this.el.loras.replaceChildren();
    for (const lora of params.loras || []) {
      if (!this.loraModels.has(lora.id)) {
        notes.push(`LoRA “${lora.id}” is not installed here`);
        continue;
      }
      this.addLora(lora.id);
      const input = this.el.loras.querySelector(`[data-lora='${CSS.escape(lora.id)}'] input`);
      input.value = String(lora.weight ?? 1);
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
    const hires = params.hires;
    this.el.hiresOn.checked = Boolean(hires);
    if (hires) {
      this.el.hiresScale.value = String(hires.scale ?? 2);
      this.el.hiresStrength.value = String(hires.strength ?? 0.5);
      this.el.hiresSteps.value = hires.steps ? String(hires.steps) : "";
      const known = [...this.el.hiresUpscaler.options].some((o) => o.value === hires.upscaler);
      if (known) this.el.hiresUpscaler.value = hires.upscaler;
      else if (hires.upscaler) notes.push(`upscaler “${hires.upscaler}” is not installed here`);
    }
    this.toggleHires();
    const units = (params.controlnets || []).length;
    if (units) notes.push(`${units} ControlNet unit${units > 1 ? "s" : ""} not restored: add it again with its control image`);
    this.renumber();
    this.familyNotes();
    return notes;
  }

  // ------------------------------------------------------------ the request

  /** Error lines ("field: message") for what cannot be sent; `edit`: the request is the editor's. */
  check(edit) {
    const errors = [];
    if (this.el.hiresOn.checked && !edit) {
      for (const [name, input] of [["scale", this.el.hiresScale], ["strength", this.el.hiresStrength],
        ["steps", this.el.hiresSteps]]) {
        if (Number.isNaN(numberOf(input)) || input.validity.badInput) errors.push(`hires.${name}: not a number`);
      }
    }
    [...this.el.cnUnits.children].forEach((node, i) => {
      if (!node.querySelector("[data-id='model']").value) errors.push(`controlnets.${i}.model: choose a ControlNet model`);
      if (!this.controlImage(node)) {
        errors.push(`controlnets.${i}.image: open an image in the editor, or choose an upload`);
      }
      for (const name of ["start", "end"]) {
        const input = node.querySelector(`[data-id='${name}']`);
        const v = numberOf(input);
        if (v === undefined || Number.isNaN(v)) errors.push(`controlnets.${i}.${name}: a number from 0 to 1`);
      }
    });
    return errors;
  }

  /** The add-ons' part of the body (after check() passed). The hires fix is for text to image only. */
  fields(edit) {
    const body = {};
    const loras = [...this.el.loras.children].map((node) => ({
      id: node.dataset.lora, weight: Number(node.querySelector("input").value),
    }));
    if (loras.length) body.loras = loras;
    if (this.el.hiresOn.checked && !edit) {
      body.hires = {
        scale: numberOf(this.el.hiresScale) ?? 2,
        strength: numberOf(this.el.hiresStrength) ?? 0.5,
        upscaler: this.el.hiresUpscaler.value,
      };
      const steps = numberOf(this.el.hiresSteps);
      if (steps !== undefined) body.hires.steps = steps;
    }
    const units = [...this.el.cnUnits.children].map((node) => {
      const part = (id) => node.querySelector(`[data-id='${id}']`);
      return {
        model: part("model").value, image: this.controlImage(node), preprocessor: part("preprocessor").value,
        weight: Number(part("weight").value), start: numberOf(part("start")), end: numberOf(part("end")),
      };
    });
    if (units.length) body.controlnets = units;
    return body;
  }
}
