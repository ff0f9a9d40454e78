// The piano roll of a melody: an SVG of its notes on the 16th grid, with a playhead and click-to-seek; the
// other parts of a piece (harmony voices, a backing) in colours of their own under the melody, chord symbols
// above it, and the bars a continuation was given shaded apart from the new ones.

import { make } from "../ui.js";

export const STEPS_PER_BAR = 16;
const PITCH_NAMES = ["C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"];
const SVG_NS = "http://www.w3.org/2000/svg";
/** Colour classes of the parts beside the melody (music.css), in the parts' order. */
const PART_COLOURS = 4;

/** An SVG element with attributes and, optionally, text. */
export function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function pitchName(pitch) {
  return `${PITCH_NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/** The parts of a result's params worth drawing: [{name, notes}] with at least one note each. */
export function partsOf(params) {
  const parts = Array.isArray(params.parts) ? params.parts : [];
  return parts
    .filter((p) => p && Array.isArray(p.notes) && p.notes.length)
    .map((p, i) => ({ name: String(p.name || `part ${i + 1}`), notes: p.notes }));
}

/** Chord symbols [[step, "Am"], ...] that change, in step order. */
function chordChanges(chords) {
  const out = [];
  for (const [step, symbol] of [...chords].sort((a, b) => a[0] - b[0])) {
    const name = String(symbol).replace("#", "♯").replace(/^([A-G])b/, "$1♭");
    if (!out.length || out[out.length - 1][1] !== name) out.push([step, name]);
  }
  return out;
}

/**
 * An SVG piano roll: notes [[pitch, startStep, endStep], ...] on the 16th grid, `bars` bars of 4/4.
 * Black-key rows are shaded, bar and beat lines drawn, C rows labelled. Options:
 * parts [{name, notes}] (drawn under the melody, one colour each), chords [[step, symbol]] (written above),
 * given (bars at the start that came from the source: shaded, with a line where the new ones begin), and
 * melodyName (what the melody is called in the legend).
 * Returns {node, legend (an element, or null when there is nothing to explain), steps, stepAt, setPlayhead}.
 */
export function pianoRoll(notes, bars, label = "Melody", { parts = [], chords = [], given = 0, melodyName = "melody" } = {}) {
  const W = 400;
  const LABEL = 28;
  const steps = Math.max(1, bars) * STEPS_PER_BAR;
  const pitches = [...notes, ...parts.flatMap((p) => p.notes)].map((n) => n[0]);
  let lo = pitches.length ? Math.min(...pitches) - 1 : 59;
  let hi = pitches.length ? Math.max(...pitches) + 1 : 73;
  while (hi - lo < 12) {
    hi += 1;
    if (hi - lo < 12) lo -= 1;
  }
  const rows = hi - lo + 1;
  // Four voices span three octaves or more: thinner rows keep the roll about as tall as a melody's.
  const ROW = rows > 40 ? 4 : rows > 26 ? 5 : 7;
  const changes = chordChanges(chords);
  const TOP = changes.length ? 12 : 0;
  const H = TOP + rows * ROW;
  const cw = (W - LABEL) / steps;
  const y = (p) => TOP + (hi - p) * ROW;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: bars > 8 ? "roll long" : "roll", role: "img" });
  const mel = notes.map((n) => n[0]);
  let description = `Piano roll of ${label}: ${notes.length} notes`;
  if (mel.length) description += `, ${pitchName(Math.min(...mel))} to ${pitchName(Math.max(...mel))}`;
  description += `, ${bars} bars`;
  if (parts.length) description += `; with ${parts.map((p) => p.name).join(", ")}`;
  if (given > 0 && given < bars) description += `; bars 1-${given} given, ${given + 1}-${bars} new`;
  if (changes.length) description += `; chords ${changes.map((c) => c[1]).join(" ")}`;
  root.setAttribute("aria-label", description);
  root.append(svg("rect", { x: LABEL, y: TOP, width: W - LABEL, height: H - TOP, class: "roll-bg" }));
  if (given > 0 && given < bars) {
    root.append(svg("rect", { x: LABEL, y: TOP, width: given * STEPS_PER_BAR * cw, height: H - TOP, class: "roll-given" }));
  }
  for (let p = lo; p <= hi; p++) {
    if ([1, 3, 6, 8, 10].includes(p % 12)) {
      root.append(svg("rect", { x: LABEL, y: y(p), width: W - LABEL, height: ROW, class: "roll-black" }));
    }
    if (p % 12 === 0) {
      root.append(svg("text", { x: LABEL - 3, y: y(p) + ROW / 2, class: "roll-label", "text-anchor": "end", "dominant-baseline": "central" }, pitchName(p)));
      root.append(svg("line", { x1: LABEL, x2: W, y1: y(p) + ROW, y2: y(p) + ROW, class: "roll-c" }));
    }
  }
  const beat = bars > 16 ? STEPS_PER_BAR : 4;
  for (let s = 0; s <= steps; s += beat) {
    const x = LABEL + s * cw;
    root.append(svg("line", { x1: x, x2: x, y1: TOP, y2: H, class: s % STEPS_PER_BAR === 0 ? "roll-bar" : "roll-beat" }));
  }
  if (given > 0 && given < bars) {
    const x = LABEL + given * STEPS_PER_BAR * cw;
    root.append(svg("line", { x1: x, x2: x, y1: 0, y2: H, class: "roll-given-line" }));
  }
  // Chord symbols where they change; one that would run into the previous one is left out (it stays in the
  // label and the sheet music).
  let free = LABEL;
  for (const [step, symbol] of changes) {
    const x = LABEL + step * cw + 1;
    if (step >= steps || x < free) continue;
    root.append(svg("text", { x, y: 9, class: "roll-chord" }, symbol));
    free = x + symbol.length * 5 + 4;
  }
  const noteRect = (pitch, start, end, cls) => svg("rect", {
    x: LABEL + start * cw, y: y(pitch) + 0.5, width: Math.max(1.5, (end - start) * cw - 0.6), height: ROW - 1,
    rx: ROW > 5 ? 1.5 : 1, class: cls,
  });
  parts.forEach((part, i) => {
    const group = svg("g", { class: `roll-part pc-${i % PART_COLOURS}`, "data-part": part.name });
    for (const [pitch, start, end] of part.notes) {
      const rect = noteRect(pitch, start, end, "part-note");
      rect.append(svg("title", {}, `${capital(part.name)}: ${pitchName(pitch)}, bar ${Math.floor(start / STEPS_PER_BAR) + 1}`));
      group.append(rect);
    }
    root.append(group);
  });
  const group = svg("g", { class: "roll-notes" });
  for (const [pitch, start, end] of notes) {
    const rect = noteRect(pitch, start, end, "note");
    rect.append(svg("title", {}, `${pitchName(pitch)}, bar ${Math.floor(start / STEPS_PER_BAR) + 1}`));
    group.append(rect);
  }
  root.append(group);
  const head = svg("line", { x1: LABEL, x2: LABEL, y1: 0, y2: H, class: "playhead", visibility: "hidden" });
  root.append(head);
  return {
    node: root,
    legend: rollLegend(parts, given, bars, melodyName),
    steps,
    /** The 16th step under a click at clientX, or null outside the notes area. */
    stepAt(clientX) {
      const box = root.getBoundingClientRect();
      const x = ((clientX - box.left) / box.width) * W;
      return x < LABEL ? null : Math.min(steps, (x - LABEL) / cw);
    },
    setPlayhead(step) {
      if (step === null || step < 0 || step > steps) {
        head.setAttribute("visibility", "hidden");
        return;
      }
      const x = LABEL + step * cw;
      head.setAttribute("x1", String(x));
      head.setAttribute("x2", String(x));
      head.setAttribute("visibility", "visible");
    },
  };
}

/** What the colours and the shading of a roll mean, or null for a plain melody. */
function rollLegend(parts, given, bars, melodyName) {
  const continued = given > 0 && given < bars;
  if (!parts.length && !continued) return null;
  const list = make("ul", undefined, "roll-legend");
  const item = (swatch, text) => {
    const li = make("li");
    li.append(make("span", undefined, `swatch ${swatch}`), make("span", text));
    list.append(li);
  };
  if (parts.length) {
    item("melody", capital(melodyName));
    parts.forEach((part, i) => item(`pc-${i % PART_COLOURS}`, capital(part.name)));
  }
  if (continued) {
    item("given", `Given: bars 1-${given}`);
    item("new", `New: bars ${given + 1}-${bars}`);
  }
  return list;
}
