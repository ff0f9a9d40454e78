// DOM and job helpers shared by the studio pages (image, music, face swap). Text goes in through
// textContent only.

import { api, hasToken, onTokenChange, readEvents, setToken, setTokenPrompt } from "./api.js";

export const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export function make(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The page's token dialog ({tokenDialog, tokenInput, tokenError}); resolves to the token, or "" if dismissed. */
export function askForToken(parts, wrong) {
  const dialog = parts.tokenDialog;
  parts.tokenError.textContent = wrong ? "That token was not accepted. Try again." : "";
  show(parts.tokenError, wrong);
  parts.tokenInput.value = "";
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      resolve(dialog.returnValue === "ok" ? parts.tokenInput.value.trim() : "");
    };
    dialog.returnValue = "";
    dialog.addEventListener("close", done);
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    parts.tokenInput.focus();
  });
}

/** Follow a job until it ends: Server-Sent Events, then polling if the stream breaks (proxy, network).
 *  `onJob` sees every state, `onPreview` every live preview ({step, steps, image}); returns the final job. A 404 (the job is gone) is thrown as the ApiError. */
export async function watchJob(jobId, onJob, onPreview = null) {
  const path = `/api/jobs/${encodeURIComponent(jobId)}`;
  let final = null;
  try {
    await readEvents(`${path}/events`, (name, data) => {
      if (name === "preview") {
        if (onPreview) onPreview(JSON.parse(data));
        return;
      }
      const job = JSON.parse(data);
      onJob(job);
      if (FINAL.has(job.status)) final = job;
    });
  } catch {
    /* the stream broke: poll below */
  }
  for (let delay = 500; !final; delay = Math.min(delay * 1.5, 5000)) {
    try {
      const job = await api(path);
      onJob(job);
      if (FINAL.has(job.status)) final = job;
    } catch (err) {
      if (err.status === 404) throw err;
    }
    if (!final) await sleep(delay);
  }
  return final;
}

/** The page's API-token parts ({tokenDialog, tokenInput, tokenError, forgetToken}): a 401 asks through the
 *  dialog, and "Forget API token" shows while a token is kept. */
export function wireToken(parts) {
  setTokenPrompt((wrong) => askForToken(parts, wrong));
  show(parts.forgetToken, hasToken());
  onTokenChange((token) => show(parts.forgetToken, Boolean(token)));
  parts.forgetToken.addEventListener("click", () => {
    setToken("");
    window.location.reload();
  });
}

/** The offline shell (sw.js); it also keeps the on-device melody model once fetched. */
export function registerServiceWorker() {
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }
}

/** Run `init` once the page's DOM is there. */
export function onReady(init) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
}

/** A blob: URL for a base64 data URL (the page's CSP allows blob: images, not data: ones). */
export function dataUrlToBlobUrl(dataUrl) {
  const [head, b64] = dataUrl.split(",", 2);
  const mime = (head.match(/^data:([^;]+)/) || [])[1] || "application/octet-stream";
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return URL.createObjectURL(new Blob([bytes], { type: mime }));
}

/** "12 s", "3 min 5 s": a short duration for ETAs. */
export function shortDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}
