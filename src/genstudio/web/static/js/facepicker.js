// "Detect first" on the face-swap page: the faces of the target (an image, or one frame of a video) found by
// POST /api/faceswap/detect, outlined and numbered on a preview of the upload, with a button per face that
// picks it in the page's face choice; and the face of the source photo that the swap will use. Strings from
// the server go into the page through textContent only.

import { api, detailLines } from "./api.js";
import { dataUrlToBlobUrl, make, show } from "./ui.js";

const VIDEO_NAME = /\.(mp4|m4v|mov|webm|mkv|avi)$/i;
const isVideo = (file) => file.type.startsWith("video/") || (!file.type && VIDEO_NAME.test(file.name));
const area = (face) => face.box[2] * face.box[3];
/** The face a swap takes when no number is given (the engine's rule: the largest; the first of equals). */
const largestOf = (faces) => faces.reduce((best, face) => (area(face) > area(best) ? face : best), faces[0]);
const errorLines = (err) => (err && err.detail !== undefined ? detailLines(err.detail) : [String((err && err.message) || err)]);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function detect(asset, frame) {
  return api("/api/faceswap/detect", { method: "POST", json: { asset, frame } });
}

/** Resolves true when `target` fires `ok`, false on `bad` or after `ms`. */
function eventOrTimeout(target, ok, bad, ms) {
  return new Promise((resolve) => {
    const done = (value) => {
      clearTimeout(timer);
      target.removeEventListener(ok, yes);
      target.removeEventListener(bad, no);
      resolve(value);
    };
    const yes = () => done(true);
    const no = () => done(false);
    const timer = setTimeout(no, ms);
    target.addEventListener(ok, yes);
    target.addEventListener(bad, no);
  });
}

/** A video's frame rate from a moment of muted playback (a browser does not say it otherwise): the
 *  shortest step between two successive frames; null where the browser cannot tell. */
function measureFps(video) {
  if (typeof video.requestVideoFrameCallback !== "function") return Promise.resolve(null);
  return new Promise((resolve) => {
    let last = null;
    let step = Infinity;
    let seen = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      video.removeEventListener("ended", finish);
      video.pause();
      resolve(Number.isFinite(step) ? 1 / step : null);
    };
    const timer = setTimeout(finish, 2500);
    const onFrame = (_now, meta) => {
      if (done) return;
      if (last && meta.presentedFrames - last.presentedFrames === 1 && meta.mediaTime > last.mediaTime) {
        step = Math.min(step, meta.mediaTime - last.mediaTime);
      }
      last = meta;
      seen += 1;
      if (seen >= 8) finish();
      else video.requestVideoFrameCallback(onFrame);
    };
    video.addEventListener("ended", finish);
    video.muted = true;
    video.requestVideoFrameCallback(onFrame);
    video.play().catch(finish);
  });
}

/**
 * The target's faces. `parts`: {root, frameRow, frame, find, frameNote, stage, img, video, canvas, status, error,
 * choice, list} of the picker, and {faces, faceIndex} the page's face choice (a mode select and a number input).
 * `upload(file)` resolves to the file's asset id (the page uploads a file once).
 */
export class FacePicker {
  constructor(parts, upload) {
    this.el = parts;
    this.upload = upload;
    this.seq = 0; // the newest file or detection; older answers are dropped
    this.asset = null;
    this.answer = null;
    this.urls = [];
    this.previewUrl = null;
    this.fps = Promise.resolve(null);
    parts.find.addEventListener("click", () => this.find());
    parts.frame.addEventListener("change", () => this.find());
    parts.frame.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault(); // not a submit of the swap form
        this.find();
      }
    });
    parts.faces.addEventListener("change", () => this.sync());
    parts.faceIndex.addEventListener("input", () => this.sync());
    parts.canvas.addEventListener("click", (event) => this.pickAt(event));
  }

  /** A new target file (or none): preview it, upload it and look for its faces. */
  async choose(file) {
    const mine = ++this.seq;
    this.clear();
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = null;
    this.asset = null;
    show(this.el.root, Boolean(file));
    if (!file) return;
    this.isVideo = isVideo(file);
    this.previewUrl = URL.createObjectURL(file);
    show(this.el.frameRow, this.isVideo);
    show(this.el.stage);
    this.el.frame.value = "0";
    const { img, video } = this.el;
    show(img, !this.isVideo);
    show(video, this.isVideo);
    img.removeAttribute("src");
    video.removeAttribute("src");
    if (this.isVideo) {
      const loaded = eventOrTimeout(video, "loadeddata", "error", 10_000);
      video.src = this.previewUrl;
      this.fps = loaded.then((ok) => {
        if (!ok) show(this.el.stage, false); // a format this browser cannot play: the thumbnails still show
        return ok ? measureFps(video) : null;
      });
    } else {
      img.src = this.previewUrl;
    }
    this.el.status.textContent = "Uploading…";
    try {
      this.asset = await this.upload(file);
    } catch (err) {
      if (mine === this.seq) this.fail(err);
      return;
    }
    if (mine === this.seq) await this.find();
  }

  /** Detect the faces of the uploaded target (at the frame the input names, for a video). */
  async find() {
    if (!this.asset) return; // still uploading: the upload's end looks at the frame asked for then
    const mine = ++this.seq;
    const raw = this.el.frame.value.trim();
    const frame = this.isVideo ? (raw === "" ? 0 : Number(raw)) : null;
    this.clear();
    this.el.status.textContent = "Looking for faces…";
    let answer;
    try {
      answer = await detect(this.asset, frame);
    } catch (err) {
      if (mine === this.seq) this.fail(err);
      return;
    }
    if (mine !== this.seq) return;
    this.answer = answer;
    const where = this.isVideo ? `frame ${answer.frame}` : "this picture";
    const n = answer.faces.length;
    this.el.status.textContent = n ? `${plural(n, "face")} found in ${where}.`
      : `No face found in ${this.isVideo ? "this frame" : "this picture"}.`;
    this.el.root.dataset.faces = String(n);
    this.el.list.replaceChildren(...answer.faces.map((face) => this.faceButton(face)));
    show(this.el.list, n > 0);
    this.sync();
    if (!this.isVideo) return;
    // The boxes wait for the video to stand at the frame they belong to.
    show(this.el.canvas, false);
    await this.showFrame(answer.frame, mine);
    if (mine === this.seq) this.draw();
  }

  faceButton(face) {
    const button = make("button", null, "fs-face");
    button.type = "button";
    button.dataset.index = String(face.index);
    button.dataset.box = face.box.join(","); // x,y,w,h in the picture's pixels
    button.setAttribute("aria-pressed", "false");
    if (face.thumbnail) {
      const thumb = make("img");
      thumb.alt = ""; // the button's name is its label; the picture is the face itself
      thumb.src = this.blobUrl(face.thumbnail);
      button.append(thumb);
    }
    button.append(make("span", face.glasses ? `Face ${face.index} · glasses` : `Face ${face.index}`));
    if (face.glasses) button.dataset.glasses = "true";
    button.addEventListener("click", () => this.select(face.index));
    return button;
  }

  /** Pick "replace face number `index`" in the page's face choice. */
  select(index) {
    this.el.faces.value = "index";
    this.el.faceIndex.value = String(index);
    // The page's own listener enables the number input; ours (sync) presses the button and redraws.
    this.el.faces.dispatchEvent(new Event("change"));
  }

  /** A click or tap on the preview picks the face under it (the smallest box, where boxes overlap). */
  pickAt(event) {
    if (!this.answer) return;
    const { canvas } = this.el;
    const rect = canvas.getBoundingClientRect();
    if (!rect.width || !rect.height) return;
    const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
    const hits = this.answer.faces.filter(({ box: [bx, by, bw, bh] }) => x >= bx && x <= bx + bw && y >= by && y <= by + bh);
    if (hits.length) this.select(hits.reduce((a, b) => (area(b) < area(a) ? b : a)).index);
  }

  /** The indexes the swap will replace with the page's current choice (null: decided by the reference photo). */
  replaced() {
    const faces = this.answer ? this.answer.faces : [];
    const mode = this.el.faces.value;
    if (mode === "reference") return null;
    if (!faces.length) return new Set();
    if (mode === "all") return new Set(faces.map((f) => f.index));
    if (mode === "index") return new Set([Number(this.el.faceIndex.value)]);
    return new Set([largestOf(faces).index]);
  }

  /** Reflect the face choice: the pressed button, the highlighted box and a sentence saying what is replaced. */
  sync() {
    if (!this.answer) return;
    const mode = this.el.faces.value;
    const index = Number(this.el.faceIndex.value);
    for (const button of this.el.list.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(mode === "index" && Number(button.dataset.index) === index));
    }
    const faces = this.answer.faces;
    let text = "";
    if (faces.length) {
      if (mode === "all") text = "Every face will be replaced.";
      else if (mode === "reference") text = "The face most like the reference photo's will be replaced.";
      else if (mode === "index") {
        text = faces.some((f) => f.index === index) ? `Face ${index} will be replaced.`
          : `There is no face ${this.el.faceIndex.value} here: pick one of the faces below.`;
      } else text = `Face ${largestOf(faces).index} (the largest) will be replaced.`;
    }
    this.el.choice.textContent = text;
    this.draw();
  }

  /** The boxes, numbered, over the preview; the ones the swap will replace highlighted. */
  draw() {
    const { canvas } = this.el;
    const { width, height, faces } = this.answer;
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const chosen = this.replaced() || new Set();
    const line = Math.max(3, Math.round(Math.max(width, height) / 150));
    const size = Math.max(14, Math.round(Math.max(width, height) / 28));
    ctx.font = `bold ${size}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const face of faces) {
      const [x, y, w, h] = face.box;
      const colour = chosen.has(face.index) ? "#facc15" : "#ffffff";
      ctx.lineWidth = line * 2;
      ctx.strokeStyle = "rgb(0 0 0 / 70%)";
      ctx.strokeRect(x, y, w, h);
      ctx.lineWidth = line;
      ctx.strokeStyle = colour;
      ctx.strokeRect(x, y, w, h);
      const label = String(face.index);
      const pad = Math.round(size / 4);
      const tw = ctx.measureText(label).width + 2 * pad;
      const ty = y - size - 2 * pad >= 0 ? y - size - 2 * pad : y;
      ctx.fillStyle = colour;
      ctx.fillRect(x, ty, tw, size + 2 * pad);
      ctx.fillStyle = "#000000";
      ctx.fillText(label, x + pad, ty + pad);
    }
    show(canvas, faces.length > 0);
  }

  /** Show frame `frame` of the video under the boxes (the browser's frame rate is measured first). */
  async showFrame(frame, mine) {
    const video = this.el.video;
    const fps = await this.fps;
    if (mine !== this.seq || !video.duration) return;
    if (!fps) {
      this.el.frameNote.textContent = "This browser does not say the video's frame rate: the preview shows its start; "
        + `the boxes are for frame ${frame}.`;
      show(this.el.frameNote, frame > 0);
      video.currentTime = 0;
      return;
    }
    // A quarter of a frame in: the seek lands on the frame itself, not on the end of the one before.
    const time = Math.min((frame + 0.25) / fps, Math.max(0, video.duration - 0.001));
    if (Math.abs(video.currentTime - time) > 1e-3) {
      video.currentTime = time;
      await eventOrTimeout(video, "seeked", "error", 5000);
    }
  }

  fail(err) {
    this.el.status.textContent = "";
    this.el.error.replaceChildren(...errorLines(err).map((line) => make("p", line)));
    show(this.el.error);
  }

  clear() {
    this.answer = null;
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.el.list.replaceChildren();
    show(this.el.list, false);
    show(this.el.canvas, false);
    this.el.error.replaceChildren();
    show(this.el.error, false);
    this.el.choice.textContent = "";
    show(this.el.frameNote, false);
    delete this.el.root.dataset.faces;
  }

  blobUrl(dataUrl) {
    const url = dataUrlToBlobUrl(dataUrl); // the page's CSP allows blob: images, not data: ones
    this.urls.push(url);
    return url;
  }
}

/**
 * The source photo's face: a thumbnail of the face the swap will use (the largest) and how many were found.
 * `parts`: {root, thumb, status}.
 */
export class SourceFace {
  constructor(parts, upload) {
    this.el = parts;
    this.upload = upload;
    this.seq = 0;
    this.url = null;
  }

  async choose(file) {
    const mine = ++this.seq;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    const { root, thumb, status } = this.el;
    show(root, Boolean(file));
    show(thumb, false);
    status.classList.remove("error");
    delete root.dataset.faces;
    if (!file) return;
    status.textContent = "Looking for the face…";
    let answer;
    try {
      answer = await detect(await this.upload(file), null);
    } catch (err) {
      if (mine !== this.seq) return;
      status.textContent = errorLines(err).join(" ");
      status.classList.add("error");
      return;
    }
    if (mine !== this.seq) return;
    const faces = answer.faces;
    root.dataset.faces = String(faces.length);
    if (!faces.length) {
      status.textContent = "No face found in this photo: choose a photo with a clear face.";
      status.classList.add("error");
      return;
    }
    const face = largestOf(faces);
    if (face.thumbnail) {
      this.url = dataUrlToBlobUrl(face.thumbnail);
      thumb.src = this.url;
      show(thumb);
    }
    status.textContent = faces.length === 1 ? "This face will be used."
      : `${faces.length} faces found: the largest (face ${face.index}, shown) will be used.`;
  }
}
