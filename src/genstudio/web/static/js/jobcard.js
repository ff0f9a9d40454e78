// The job card of every studio page: one job's progress bar, status line, cancel button and error, kept up
// to date from the server (events, then polling) until the job ends.

import { api } from "./api.js";
import { dataUrlToBlobUrl, FINAL, shortDuration, show, watchJob } from "./ui.js";

export const STATUS_TEXT = { queued: "Queued", running: "Running", succeeded: "Done", failed: "Failed", cancelled: "Cancelled" };

function percentOf(job) {
  if (job.status === "succeeded") return 100;
  return Math.round(Math.max(0, Math.min(1, job.progress || 0)) * 100);
}

/** A status wording: "Running · 40%", "Done · 2 images", where `noun` is [singular, plural] of a result. */
export function countStatus(noun) {
  return (job, percent) => {
    let text = STATUS_TEXT[job.status] || job.status;
    if (job.status === "running") text += ` · ${percent}%`;
    if (job.status === "succeeded" && noun) {
      const n = job.assets.length;
      text += ` · ${n} ${n === 1 ? noun[0] : noun[1]}`;
    }
    return text;
  };
}

/** " · about 12 s left" once a running job has shown enough progress to extrapolate from. */
function eta(parts, job) {
  if (job.status !== "running") return "";
  const now = performance.now();
  const p = Math.max(0, Math.min(1, job.progress || 0));
  if (!parts.runningSince || p < (parts.firstProgress ?? 0)) {
    parts.runningSince = now;
    parts.firstProgress = p;
    return "";
  }
  const done = p - parts.firstProgress;
  const elapsed = (now - parts.runningSince) / 1000;
  if (done < 0.05 || elapsed < 1) return "";
  return ` · about ${shortDuration((elapsed * (1 - p)) / done)} left`;
}

/** The job's live preview (a small JPEG of the current step) on the card, where the card has room for it. */
function renderPreview(parts, preview) {
  if (!parts.preview || !preview.image) return;
  const old = parts.preview.src;
  parts.preview.src = dataUrlToBlobUrl(preview.image);
  parts.preview.alt = `Preview of the image forming, step ${preview.step} of ${preview.steps}`;
  show(parts.preview);
  if (old && old.startsWith("blob:")) URL.revokeObjectURL(old);
}

function showError(parts, message) {
  parts.error.textContent = message;
  show(parts.error);
}

/** Show `job` on a card's parts: {bar, fill, status}, and {node, cancel, error} where the card has them.
 *  `text(job, percent)` words the status line. */
export function renderJob(parts, job, text) {
  const percent = percentOf(job);
  parts.bar.setAttribute("aria-valuenow", String(percent));
  parts.bar.setAttribute("aria-valuetext", `${percent}% (${STATUS_TEXT[job.status] || job.status})`);
  parts.fill.style.transform = `scaleX(${percent / 100})`;
  if (parts.node) parts.node.dataset.status = job.status;
  parts.status.textContent = text(job, percent) + eta(parts, job);
  if (!FINAL.has(job.status)) return;
  if (parts.preview) parts.preview.remove();
  if (parts.cancel) parts.cancel.remove();
  const failed = job.status === "failed" || (job.status === "cancelled" && job.error && job.error !== "cancelled");
  if (parts.error && failed) showError(parts, job.error || "The job failed.");
}

/** Follow a job on its card until it ends. Resolves to the final job; when the job cannot be followed (it
 *  is gone), a card with an error box shows why and resolves to null, one without rethrows. */
export async function followJob(jobId, parts, text) {
  try {
    return await watchJob(jobId, (job) => renderJob(parts, job, text), (p) => renderPreview(parts, p));
  } catch (err) {
    if (!parts.error) throw err;
    showError(parts, err.message);
    if (parts.cancel) parts.cancel.remove();
    return null;
  }
}

async function cancelJob(jobId, parts, text) {
  parts.cancel.disabled = true;
  try {
    renderJob(parts, await api(`/api/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" }), text);
  } catch (err) {
    showError(parts, err.message);
    parts.cancel.disabled = false;
  }
}

/**
 * A card from the page's #job-template at the top of `list` (hiding the `empty` note), following the job.
 * title: the card's heading; summary: the resolved parameters; label: how the progress bar and the cancel
 * button name the job; noun: [singular, plural] of a result; data: extra data-* attributes.
 * Resolves like followJob.
 */
export function startJobCard({ list, empty, jobId, title, summary, label = title, noun, data = {} }) {
  const node = document.getElementById("job-template").content.firstElementChild.cloneNode(true);
  const parts = {
    node,
    bar: node.querySelector(".bar"),
    fill: node.querySelector(".bar-fill"),
    status: node.querySelector(".job-status"),
    cancel: node.querySelector(".job-cancel"),
    error: node.querySelector(".job-error"),
    preview: node.querySelector(".job-preview"),
  };
  node.dataset.jobId = jobId;
  Object.assign(node.dataset, data);
  node.querySelector(".job-prompt").textContent = title;
  node.querySelector(".job-params").textContent = summary;
  parts.bar.setAttribute("aria-label", `Progress of ${label}`);
  parts.cancel.setAttribute("aria-label", `Cancel ${label}`);
  const text = countStatus(noun);
  parts.cancel.addEventListener("click", () => cancelJob(jobId, parts, text));
  list.prepend(node);
  if (empty) show(empty, false);
  return followJob(jobId, parts, text);
}
