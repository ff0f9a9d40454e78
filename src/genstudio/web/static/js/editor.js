// The image editor panel: a picture on a canvas with a mask painted over it (Pointer Events: mouse, pen and
// touch alike), undo and redo, an outpaint frame, and the edit fields of POST /api/images (init_image,
// strength, mask, mask_blur, inpaint_area, outpaint). The mask goes up as a PNG at the picture's own size,
// white = repaint, black = keep.

import { api, fetchBlob, uploadForm } from "./api.js";
import { show } from "./ui.js";

const TINT = "#1f5bff"; // the mask as painted; the overlay canvas is see-through in CSS
const SIDES = ["left", "right", "top", "bottom"];
const MAX_SIDE = 1536; // the server's default GENSTUDIO_MAX_SIZE: a bigger picture is sent scaled down
const MIN_SIDE = 64;

const canvas = (w, h) => Object.assign(document.createElement("canvas"), { width: w, height: h });

/** The size to generate at for a picture of w x h: its own when the server takes it, else scaled to fit and
 *  rounded to a multiple of 8 (the model's latent grid). */
export function generationSize(w, h) {
  const k = Math.min(1, MAX_SIDE / Math.max(w, h));
  const fit = (v) => Math.max(MIN_SIDE, Math.round((v * k) / 8) * 8);
  return { width: fit(w), height: fit(h) };
}

export class Editor {
  /** root: the panel (#editor); onChange(): called when the picture changes (opened or closed). */
  constructor(root, { onChange = () => {} } = {}) {
    const $ = (id) => root.querySelector(`#${id}`);
    this.root = root;
    this.onChange = onChange;
    this.el = {
      title: $("editor-title"), source: $("ed-source"), close: $("ed-close"), paint: $("ed-paint"),
      erase: $("ed-erase"), brush: $("ed-brush"), brushValue: $("ed-brush-value"), undo: $("ed-undo"),
      redo: $("ed-redo"), clear: $("ed-clear"), invert: $("ed-invert"), stage: $("ed-stage"),
      image: $("ed-image"), view: $("ed-mask"), strength: $("ed-strength"), strengthValue: $("ed-strength-value"),
      blur: $("ed-blur"), areaMasked: $("ed-area-masked"), size: $("ed-size"), error: $("ed-error"), run: $("ed-run"),
      out: Object.fromEntries(SIDES.map((side) => [side, $(`ed-out-${side}`)])),
    };
    this.picture = null; // {assetId, bitmap, width, height, label}
    this.mask = null; // a canvas at the picture's size; alpha > 0 where painted
    this.ops = []; // strokes, clears and inverts since the picture was opened: undo replays all but the last
    this.undone = [];
    this.stroke = null;
    this.version = 0; // bumped on every mask change: the uploaded mask is reused while it is current
    this.uploaded = { version: -1, id: null };
    this.pad = { left: 0, right: 0, top: 0, bottom: 0 };
    this.frame = 0;
    this.wire();
  }

  get open() {
    return this.picture !== null;
  }

  get assetId() {
    return this.picture ? this.picture.assetId : null;
  }

  wire() {
    const { el } = this;
    el.close.addEventListener("click", () => this.close());
    el.paint.addEventListener("click", () => this.setErase(false));
    el.erase.addEventListener("click", () => this.setErase(true));
    el.brush.addEventListener("input", () => {
      this.brushTouched = true;
      el.brushValue.textContent = `${el.brush.value} px`;
    });
    el.strength.addEventListener("input", () => {
      this.strengthTouched = true;
      this.showStrength();
    });
    el.undo.addEventListener("click", () => this.undo());
    el.redo.addEventListener("click", () => this.redo());
    el.clear.addEventListener("click", () => this.apply({ type: "clear" }));
    el.invert.addEventListener("click", () => this.apply({ type: "invert" }));
    for (const side of SIDES) el.out[side].addEventListener("input", () => this.readPad());
    // Undo and redo from the keyboard while the focus is in the panel or nowhere in particular (after painting).
    document.addEventListener("keydown", (event) => {
      if (!this.open || !(event.ctrlKey || event.metaKey) || event.altKey) return;
      if (event.target !== document.body && !this.root.contains(event.target)) return;
      const key = event.key.toLowerCase();
      if (event.target.matches("input:not([type=range]):not([type=radio]):not([type=checkbox]), textarea")) return;
      if (key === "z" && !event.shiftKey) this.undo();
      else if ((key === "z" && event.shiftKey) || key === "y") this.redo();
      else return;
      event.preventDefault();
    });
    this.root.addEventListener("input", (event) => {
      if (event.target.getAttribute("aria-invalid")) event.target.removeAttribute("aria-invalid");
    });
    const view = el.view;
    view.addEventListener("pointerdown", (event) => this.pointerDown(event));
    view.addEventListener("pointermove", (event) => this.pointerMove(event));
    view.addEventListener("pointerup", (event) => this.pointerUp(event));
    view.addEventListener("pointercancel", (event) => this.pointerUp(event));
    view.addEventListener("lostpointercapture", (event) => this.pointerUp(event));
    view.addEventListener("contextmenu", (event) => event.preventDefault());
  }

  // ------------------------------------------------------------ opening

  /** Open asset `assetId` (an image the server has) in the editor; `label` says where it came from. */
  async openAsset(assetId, url, label) {
    const bitmap = await createImageBitmap(await fetchBlob(url));
    this.load({ assetId, bitmap, width: bitmap.width, height: bitmap.height, label });
  }

  /** Upload `file` (POST /api/uploads) and open what the server stored. */
  async openFile(file) {
    const answer = await api("/api/uploads", { method: "POST", body: uploadForm(file) });
    if (answer.kind && answer.kind !== "image") throw new Error(`${file.name} is not an image (it is ${answer.kind})`);
    await this.openAsset(answer.asset_id, `/api/assets/${encodeURIComponent(answer.asset_id)}`, `Upload ${file.name}`);
  }

  load(picture) {
    if (this.picture) this.picture.bitmap.close();
    this.picture = picture;
    this.mask = canvas(picture.width, picture.height);
    this.ops = [];
    this.undone = [];
    this.stroke = null;
    this.version += 1;
    this.showError([]);
    const longest = Math.max(picture.width, picture.height);
    this.el.brush.max = String(Math.max(16, Math.round(longest / 2)));
    if (!this.brushTouched) this.el.brush.value = String(Math.max(4, Math.round(longest / 10)));
    this.el.brushValue.textContent = `${this.el.brush.value} px`;
    this.el.source.textContent = `${picture.label} · ${picture.width}×${picture.height}`;
    show(this.root);
    this.readPad();
    this.updateHistory();
    this.onChange();
  }

  close() {
    if (this.picture) this.picture.bitmap.close();
    this.picture = null;
    this.mask = null;
    show(this.root, false);
    this.onChange();
    if (this.opener && this.opener.isConnected) this.opener.focus();
  }

  /** Bring the panel into view and put the focus on its heading (a screen reader reads where it is); Close
   *  gives it back to what opened the editor. */
  reveal() {
    const from = document.activeElement;
    if (from && from !== document.body && !this.root.contains(from)) this.opener = from;
    this.el.title.focus({ preventScroll: true });
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    this.root.scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
  }

  setErase(erase) {
    this.el.paint.setAttribute("aria-pressed", String(!erase));
    this.el.erase.setAttribute("aria-pressed", String(erase));
  }

  get erasing() {
    return this.el.erase.getAttribute("aria-pressed") === "true";
  }

  // ------------------------------------------------------------ outpaint frame

  /** The outpaint sides as typed; a side that is not a whole number >= 0 is drawn as 0 until fixed. */
  readPad() {
    for (const side of SIDES) {
      const v = Number(this.el.out[side].value);
      this.pad[side] = Number.isInteger(v) && v >= 0 && v <= 4096 ? v : 0;
    }
    // The new area starts from a rough fill of the edge colours: outpainting wants more change than an
    // edit (the server's defaults, 0.85 and 0.75), unless the user chose a strength.
    if (!this.strengthTouched) {
      this.el.strength.value = SIDES.some((side) => this.pad[side]) ? "0.85" : "0.75";
      this.showStrength();
    }
    this.layout();
  }

  showStrength() {
    this.el.strengthValue.textContent = Number(this.el.strength.value).toFixed(2);
  }

  layout() {
    if (!this.picture) return;
    const { width, height } = this.picture;
    const W = width + this.pad.left + this.pad.right;
    const H = height + this.pad.top + this.pad.bottom;
    for (const c of [this.el.image, this.el.view]) {
      if (c.width !== W) c.width = W;
      if (c.height !== H) c.height = H;
    }
    const grown = W !== width || H !== height;
    this.el.stage.classList.toggle("extended", grown);
    this.el.size.textContent = grown ? `${width}×${height} becomes ${W}×${H}.` : `${width}×${height}, not extended.`;
    const ctx = this.el.image.getContext("2d");
    ctx.clearRect(0, 0, W, H);
    if (grown) {
      // A checkerboard where new pixels will be painted.
      const cell = Math.max(8, Math.round(Math.max(W, H) / 32));
      for (let y = 0; y < H; y += cell) {
        for (let x = 0; x < W; x += cell) {
          ctx.fillStyle = ((x + y) / cell) % 2 ? "#c8c8d4" : "#f0f0f5";
          ctx.fillRect(x, y, cell, cell);
        }
      }
    }
    ctx.drawImage(this.picture.bitmap, this.pad.left, this.pad.top);
    this.render();
  }

  /** The mask layer: the mask where the picture sits inside the (maybe extended) frame. */
  render() {
    this.frame = 0;
    const view = this.el.view;
    const ctx = view.getContext("2d");
    ctx.clearRect(0, 0, view.width, view.height);
    if (this.mask) ctx.drawImage(this.mask, this.pad.left, this.pad.top);
  }

  scheduleRender() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  // ------------------------------------------------------------ painting

  /** A pointer's position in picture pixels (the canvas is scaled to fit, letterboxed by object-fit). */
  point(event) {
    const view = this.el.view;
    const rect = view.getBoundingClientRect();
    const scale = Math.min(rect.width / view.width, rect.height / view.height);
    const x0 = rect.left + (rect.width - view.width * scale) / 2;
    const y0 = rect.top + (rect.height - view.height * scale) / 2;
    return [(event.clientX - x0) / scale - this.pad.left, (event.clientY - y0) / scale - this.pad.top];
  }

  pointerDown(event) {
    if (!this.picture || this.stroke) return;
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    this.el.view.setPointerCapture(event.pointerId);
    this.stroke = {
      type: "stroke", pointerId: event.pointerId, erase: this.erasing, size: Number(this.el.brush.value),
      points: [this.point(event)],
    };
    drawStroke(this.mask.getContext("2d"), this.stroke, 0);
    this.scheduleRender();
  }

  pointerMove(event) {
    const stroke = this.stroke;
    if (!stroke || event.pointerId !== stroke.pointerId) return;
    const from = stroke.points.length - 1;
    const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) stroke.points.push(this.point(e));
    drawStroke(this.mask.getContext("2d"), stroke, from);
    this.scheduleRender();
  }

  pointerUp(event) {
    const stroke = this.stroke;
    if (!stroke || event.pointerId !== stroke.pointerId) return;
    this.stroke = null;
    delete stroke.pointerId;
    this.ops.push(stroke);
    this.undone = [];
    this.changed();
  }

  /** A whole-mask operation (clear, invert), kept in the history like a stroke. */
  apply(op) {
    if (!this.mask) return;
    applyOp(this.mask, op);
    this.ops.push(op);
    this.undone = [];
    this.changed();
  }

  undo() {
    if (!this.ops.length || this.stroke) return;
    this.undone.push(this.ops.pop());
    this.replay();
  }

  redo() {
    if (!this.undone.length || this.stroke) return;
    const op = this.undone.pop();
    applyOp(this.mask, op);
    this.ops.push(op);
    this.changed();
  }

  replay() {
    this.mask.getContext("2d").clearRect(0, 0, this.mask.width, this.mask.height);
    for (const op of this.ops) applyOp(this.mask, op);
    this.changed();
  }

  changed() {
    this.version += 1;
    this.render();
    this.updateHistory();
  }

  updateHistory() {
    this.el.undo.disabled = this.ops.length === 0;
    this.el.redo.disabled = this.undone.length === 0;
  }

  // ------------------------------------------------------------ the mask file

  maskIsEmpty() {
    const { data } = this.mask.getContext("2d").getImageData(0, 0, this.mask.width, this.mask.height);
    for (let i = 3; i < data.length; i += 4) if (data[i]) return false;
    return true;
  }

  /** The mask as a PNG at the picture's size: white where painted, black elsewhere. */
  maskPng() {
    const { width, height } = this.mask;
    const white = canvas(width, height);
    const w = white.getContext("2d");
    w.drawImage(this.mask, 0, 0);
    w.globalCompositeOperation = "source-in";
    w.fillStyle = "#fff";
    w.fillRect(0, 0, width, height);
    const out = canvas(width, height);
    const o = out.getContext("2d");
    o.fillStyle = "#000";
    o.fillRect(0, 0, width, height);
    o.drawImage(white, 0, 0);
    return new Promise((resolve, reject) => {
      out.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("mask: the browser could not encode it"))), "image/png");
    });
  }

  /** The asset id of the current mask, uploading it when it changed since the last upload. */
  async maskAsset() {
    if (this.uploaded.version === this.version) return this.uploaded.id;
    const version = this.version;
    const blob = await this.maskPng();
    const answer = await api("/api/uploads", { method: "POST", body: uploadForm(new File([blob], "mask.png", { type: "image/png" })) });
    this.uploaded = { version, id: answer.asset_id };
    return answer.asset_id;
  }

  // ------------------------------------------------------------ the request

  /** Check the edit fields; returns error lines ("field: message"), none when the request can go. */
  check() {
    const errors = [];
    if (!this.picture) errors.push("init_image: open an image in the editor first");
    const blur = this.el.blur.value.trim();
    if (blur !== "" && !Number.isInteger(Number(blur))) errors.push("mask_blur: a whole number of pixels");
    for (const side of SIDES) {
      const raw = this.el.out[side].value.trim();
      const v = Number(raw);
      if (raw === "" || v === 0) continue;
      if (!Number.isInteger(v) || v < 0) errors.push(`outpaint.${side}: a whole number of pixels, 0 or more`);
      else if (v % 8) errors.push(`outpaint.${side}: must be a multiple of 8 (got ${v})`);
    }
    return errors;
  }

  /** The editor's part of a POST /api/images body (after check() passed); uploads the mask if one is painted.
   *  `form` is what the Create form set: its width and height win over the picture's size. */
  async fields(form) {
    const body = { init_image: this.picture.assetId, strength: Number(this.el.strength.value) };
    if (form.width === undefined && form.height === undefined) {
      Object.assign(body, generationSize(this.picture.width, this.picture.height));
    }
    if (!this.maskIsEmpty()) {
      body.mask = await this.maskAsset();
      const blur = this.el.blur.value.trim();
      if (blur !== "") body.mask_blur = Number(blur);
      if (this.el.areaMasked.checked) body.inpaint_area = "masked";
    }
    const pad = Object.fromEntries(SIDES.map((side) => [side, Number(this.el.out[side].value) || 0]));
    if (SIDES.some((side) => pad[side])) body.outpaint = pad;
    return body;
  }

  /** Show error lines next to the Run button (none: hide the box). */
  showError(lines) {
    const box = this.el.error;
    box.replaceChildren(...lines.map((line) => Object.assign(document.createElement("p"), { textContent: line })));
    show(box, lines.length > 0);
  }
}

function drawStroke(ctx, stroke, from) {
  ctx.save();
  ctx.globalCompositeOperation = stroke.erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = TINT;
  ctx.lineWidth = stroke.size;
  ctx.lineCap = ctx.lineJoin = "round";
  const pts = stroke.points;
  if (pts.length === 1) {
    const [x, y] = pts[pts.length - 1];
    ctx.beginPath();
    ctx.arc(x, y, stroke.size / 2, 0, Math.PI * 2);
    ctx.fill();
  } else {
    ctx.beginPath();
    ctx.moveTo(...pts[from]);
    for (let i = from + 1; i < pts.length; i++) ctx.lineTo(...pts[i]);
    ctx.stroke();
  }
  ctx.restore();
}

function applyOp(mask, op) {
  const ctx = mask.getContext("2d");
  if (op.type === "stroke") {
    drawStroke(ctx, op, 0);
  } else if (op.type === "clear") {
    ctx.clearRect(0, 0, mask.width, mask.height);
  } else if (op.type === "invert") {
    // alpha -> 1 - alpha: fill everything, then cut out what was painted.
    const copy = canvas(mask.width, mask.height);
    copy.getContext("2d").drawImage(mask, 0, 0);
    ctx.save();
    ctx.globalCompositeOperation = "source-over";
    ctx.fillStyle = TINT;
    ctx.fillRect(0, 0, mask.width, mask.height);
    ctx.globalCompositeOperation = "destination-out";
    ctx.drawImage(copy, 0, 0);
    ctx.restore();
  }
}
