// The provenance check of every studio page: a file or a result goes to POST /api/verify, and the report
// (watermark, visible label, signed manifest, what a MIDI file says of itself) is shown as a short list.

import { api, fetchBlob } from "./api.js";
import { make, show } from "./ui.js";

function manifestText(mf) {
  if (!mf.found) return "not found";
  const text = mf.valid ? "valid" : "present but not valid";
  return mf.recovered ? `${text} (recovered from this studio's store)` : text;
}

// true when a mark of ours was found; v2 servers answer "unknown" rather than false.
function aiText(value) {
  if (value === true) return "yes";
  if (value === false) return "no";
  return String(value ?? "unknown");
}

/** "found (confidence 99%, 1 bit corrected, read from key frame 0)" or "not found". */
function watermarkText(wm) {
  if (!wm.found) return "not found";
  const parts = [];
  if (typeof wm.confidence === "number") parts.push(`confidence ${Math.round(wm.confidence * 100)}%`);
  if (wm.bit_errors) parts.push(`${wm.bit_errors} bit${wm.bit_errors === 1 ? "" : "s"} corrected`);
  if (wm.read_from) parts.push(`read from the ${wm.read_from}`.replace("the key", "key"));
  return parts.length ? `found (${parts.join(", ")})` : "found";
}

/** The report as rows in `box`. The Label row shows when asked for (`label`) or when a label was found. */
export function renderReport(box, report, { title = "", label = false } = {}) {
  const wm = report.watermark || {};
  const mf = report.manifest || {};
  const lb = report.label || {};
  const rows = [];
  if (label || lb.found) rows.push(["Label", lb.found ? `found (${lb.corner})` : "not found", Boolean(lb.found)]);
  rows.push(
    ["Watermark", watermarkText(wm), Boolean(wm.found)],
    ["Manifest", manifestText(mf), Boolean(mf.found && mf.valid)],
    ["AI-generated", aiText(report.ai_generated), report.ai_generated === true],
    ["Signer", mf.signer || "none"],
  );
  if (mf.signer_issuer) rows.push(["Issuer", mf.signer_issuer]);
  if (mf.claim_generator) rows.push(["Made with", mf.claim_generator]);
  const gen = (mf.assertions || {})["org.genstudio.generation"];
  if (gen && gen.consent_id) rows.push(["Consent", gen.consent_id]);
  if (report.video) rows.push(["Video", `${report.video.width}x${report.video.height}, ${report.video.frames} frames`]);
  const midi = report.midi;
  if (midi) {
    rows.push(["Says AI-generated", midi.declared_ai_generated ? "yes (unsigned)" : "no"]);
    if (midi.copyright) rows.push(["Copyright", midi.copyright]);
  }

  const out = [];
  if (title) out.push(make("p", title, "verify-title"));
  const list = make("dl");
  for (const [name, value, good] of rows) {
    const row = make("div");
    row.dataset.field = name.toLowerCase().replaceAll(" ", "-");
    const dd = make("dd", value);
    if (good !== undefined) dd.className = good ? "yes" : "no";
    row.append(make("dt", name), dd);
    list.append(row);
  }
  out.push(list);
  if (midi) out.push(make("p", "A MIDI file holds no watermark or signature: what it says of itself is unsigned.", "hint"));
  if (report.ai_generated !== true) {
    out.push(make("p", "No mark of ours was found. That proves nothing either way: the file may come from another tool, or have lost its marks.", "hint"));
  }
  if (mf.recovered) {
    out.push(make("p", "This file carries no credentials of its own: its watermark names the signed manifest this studio kept for the original, shown here.", "hint"));
  }
  const problems = [wm.error, ...(mf.errors || [])].filter(Boolean);
  if (problems.length && !(wm.found || mf.found)) out.push(make("p", problems.join("; "), "hint"));
  box.replaceChildren(...out);
  box.classList.remove("error");
  show(box);
}

/** POST the bytes to /api/verify under `name`; resolves to the report. */
export function verifyBlob(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  return api("/api/verify", { method: "POST", body: form });
}

/**
 * Check the file that `getBlob()` gives and show the report in `box`: `checking` while it runs, the error
 * (after `errorPrefix`) in the box if anything fails. `title` and `label` are renderReport's.
 */
export async function verifyInto(box, name, getBlob, { checking = "Checking…", errorPrefix = "", ...options } = {}) {
  box.replaceChildren(make("p", checking, "hint"));
  box.classList.remove("error");
  show(box);
  try {
    renderReport(box, await verifyBlob(await getBlob(), name), options);
  } catch (err) {
    box.replaceChildren(make("p", `${errorPrefix}${err.message}`));
    box.classList.add("error");
  }
}

/** The "Verify a file" tool: any file chosen in `input` is checked into `box`. */
export function wireVerifyFile(input, box, options = {}) {
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    try {
      await verifyInto(box, file.name, () => file, {
        ...options, checking: `Checking ${file.name}…`, errorPrefix: `${file.name}: `, title: file.name,
      });
    } finally {
      input.value = "";
    }
  });
}

/** A card's Verify button: checks the asset at `url` into the card's `box`, the button off meanwhile. */
export function wireVerifyButton(button, box, url, name, options = {}) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await verifyInto(box, name, () => fetchBlob(url), options);
    } finally {
      button.disabled = false;
    }
  });
}
