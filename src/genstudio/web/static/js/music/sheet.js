// Sheet music for a melody card: the MusicXML drawn by OpenSheetMusicDisplay (loaded on first use), or plain
// staves of our own (one per part) when that cannot load.

import { fetchBlob } from "../api.js";
import { make, show } from "../ui.js";
import { STEPS_PER_BAR, partsOf, svg } from "./roll.js";

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
  const p = item.params || {};
  const parts = partsOf(p);
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
      drawCredits: false, drawPartNames: parts.length > 0, drawPartAbbreviations: false,
      drawingParameters: "compacttight",
    });
    await osmd.load(xml);
    // Several staves at full size fill a card's width with one bar: smaller notes fit more on a line.
    if (parts.length) osmd.Zoom = 0.7;
    osmd.render();
    box.dataset.renderer = "osmd";
  } catch (err) {
    // The fallback: plain staves of our own, drawn from the notes of the melody and of each part.
    const staves = [{ name: p.part_name || "melody", notes: p.notes || [] }, ...parts];
    box.replaceChildren(simpleStaff(staves, p.bars || 2),
      make("p", `Simple staff shown (${err.message || err}).`, "hint"));
    box.dataset.renderer = "simple";
  }
}

const DIATONIC = [0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5, 6]; // C C# D D# E F F# G G# A A# B -> letter index
const SHARP = new Set([1, 3, 6, 8, 10]);
// Each clef: its bottom line in diatonic steps from C0 (E4, G2), and the pitches two ledger lines below and
// above its staff (A3-C6, C2-E4), the range that reads easily.
const CLEFS = {
  treble: { bottom: 4 * 7 + 2, low: 57, high: 84, glyph: "𝄞" },
  bass: { bottom: 2 * 7 + 4, low: 36, high: 64, glyph: "𝄢" },
};
const OTTAVA = { 2: "15ma", 1: "8va", "-1": "8vb", "-2": "15mb" };

/**
 * Staves [{name, notes}] one under another (a melody, or the voices of a harmonization), each in the clef
 * that suits its notes, with noteheads placed by pitch and time: enough to read the music when OSMD is
 * unavailable.
 */
export function simpleStaff(staves, bars) {
  const steps = bars * STEPS_PER_BAR;
  const W = Math.max(320, bars * 160);
  const GAP = 8;
  const top = 40;
  const BLOCK = top + 4 * GAP + 40;
  const H = staves.length * BLOCK + 8;
  const x0 = 36;
  const cw = (W - x0 - 8) / steps;
  // At its own size (the sheet box scrolls): squeezed to a card's width, eight bars of four staves are unreadable.
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "staff", role: "img" });
  const count = staves.reduce((n, s) => n + s.notes.length, 0);
  const names = ` (${staves.map((s) => s.name).join(", ")})`;
  const on = staves.length > 1 ? ` on ${staves.length} staves${names}` : "";
  root.setAttribute("aria-label", `Sheet music: ${count} notes in ${bars} bars${on}`);
  staves.forEach((staff, i) => {
    const pitches = staff.notes.map((n) => n[0]).sort((a, b) => a - b);
    const median = pitches.length ? pitches[Math.floor(pitches.length / 2)] : 71;
    const clef = median < 60 ? CLEFS.bass : CLEFS.treble;
    // A line far outside its clef's easy range is written an octave or two off and marked 8va / 8vb, where
    // that saves more than a few ledger lines.
    let shift = 0;
    let best = Infinity;
    for (const s of [0, 1, -1, 2, -2]) {
      const over = pitches.length
        ? Math.max(0, pitches[pitches.length - 1] - 12 * s - clef.high) + Math.max(0, clef.low - (pitches[0] - 12 * s))
        : 0;
      if (over + 6 * Math.abs(s) < best) [shift, best] = [s, over + 6 * Math.abs(s)];
    }
    const g = svg("g", { class: "staff-part", "data-part": staff.name, transform: `translate(0 ${i * BLOCK})` });
    const bottom = top + 4 * GAP;
    if (staves.length > 1) g.append(svg("text", { x: 4, y: 12, class: "staff-name" }, staff.name));
    if (shift) g.append(svg("text", { x: 6, y: shift > 0 ? top - 6 : bottom + 14, class: "staff-name" }, OTTAVA[shift]));
    for (let l = 0; l < 5; l++) g.append(svg("line", { x1: 4, x2: W - 4, y1: top + l * GAP, y2: top + l * GAP, class: "staff-line" }));
    g.append(svg("text", { x: 6, y: clef === CLEFS.treble ? bottom - 2 : top + 2 * GAP + 4, class: clef === CLEFS.treble ? "staff-clef" : "staff-clef bass" }, clef.glyph));
    for (let b = 0; b <= bars; b++) {
      const x = x0 + b * STEPS_PER_BAR * cw - 4;
      g.append(svg("line", { x1: x, x2: x, y1: top, y2: bottom, class: "staff-line" }));
    }
    const lineAt = (l) => bottom - (l * GAP) / 2;
    for (const [sounding, start, end] of staff.notes) {
      const pitch = sounding - 12 * shift;
      const dia = (Math.floor(pitch / 12) - 1) * 7 + DIATONIC[pitch % 12]; // MIDI 60 is C4
      const pos = dia - clef.bottom; // 0 = bottom line, 2 = next line...
      const cy = lineAt(pos);
      const cx = x0 + start * cw;
      for (let l = -2; l >= pos; l -= 2) g.append(svg("line", { x1: cx - 7, x2: cx + 7, y1: lineAt(l), y2: lineAt(l), class: "staff-line" }));
      for (let l = 10; l <= pos; l += 2) g.append(svg("line", { x1: cx - 7, x2: cx + 7, y1: lineAt(l), y2: lineAt(l), class: "staff-line" }));
      const hollow = end - start >= 8;
      g.append(svg("ellipse", { cx, cy, rx: 4.6, ry: 3.4, class: hollow ? "staff-note hollow" : "staff-note" }));
      if (end - start < 16) g.append(svg("line", { x1: cx + 4.2, x2: cx + 4.2, y1: cy, y2: cy - 24, class: "staff-stem" }));
      if (SHARP.has(pitch % 12)) g.append(svg("text", { x: cx - 13, y: cy + 4, class: "staff-acc" }, "♯"));
    }
    root.append(g);
  });
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
