// Sheet music for a melody card: the MusicXML drawn by OpenSheetMusicDisplay (loaded on first use), or a
// plain staff of our own when that cannot load.

import { fetchBlob } from "../api.js";
import { make, show } from "../ui.js";
import { STEPS_PER_BAR, svg } from "./roll.js";

const OSMD_URL = "/static/vendor/opensheetmusicdisplay/opensheetmusicdisplay.min.js";

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

/** A card's "Sheet music" button: opens and closes its .sheet box, rendering it the first time. */
export function wireSheet(node, item) {
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
