// The piano roll of a melody: an SVG of its notes on the 16th grid, with a playhead and click-to-seek.

export const STEPS_PER_BAR = 16;
const PITCH_NAMES = ["C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"];
const SVG_NS = "http://www.w3.org/2000/svg";

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

/**
 * An SVG piano roll: notes [[pitch, startStep, endStep], ...] on the 16th grid, `bars` bars of 4/4.
 * Black-key rows are shaded, bar and beat lines drawn, C rows labelled. Returns {node, setPlayhead(step|null)}.
 */
export function pianoRoll(notes, bars, label = "Melody") {
  const W = 400;
  const LABEL = 28;
  const ROW = 7;
  const steps = Math.max(1, bars) * STEPS_PER_BAR;
  let lo = notes.length ? Math.min(...notes.map((n) => n[0])) - 1 : 59;
  let hi = notes.length ? Math.max(...notes.map((n) => n[0])) + 1 : 73;
  while (hi - lo < 12) {
    hi += 1;
    if (hi - lo < 12) lo -= 1;
  }
  const rows = hi - lo + 1;
  const H = rows * ROW;
  const cw = (W - LABEL) / steps;
  const y = (p) => (hi - p) * ROW;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: bars > 8 ? "roll long" : "roll", role: "img" });
  const range = notes.length
    ? `, ${pitchName(Math.min(...notes.map((n) => n[0])))} to ${pitchName(Math.max(...notes.map((n) => n[0])))}`
    : "";
  root.setAttribute("aria-label", `Piano roll of ${label}: ${notes.length} notes${range}, ${bars} bars`);
  root.append(svg("rect", { x: LABEL, y: 0, width: W - LABEL, height: H, class: "roll-bg" }));
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
    root.append(svg("line", { x1: x, x2: x, y1: 0, y2: H, class: s % STEPS_PER_BAR === 0 ? "roll-bar" : "roll-beat" }));
  }
  const group = svg("g", { class: "roll-notes" });
  for (const [pitch, start, end] of notes) {
    const rect = svg("rect", {
      x: LABEL + start * cw, y: y(pitch) + 0.5, width: Math.max(1.5, (end - start) * cw - 0.6), height: ROW - 1,
      rx: 1.5, class: "note",
    });
    rect.append(svg("title", {}, `${pitchName(pitch)}, bar ${Math.floor(start / STEPS_PER_BAR) + 1}`));
    group.append(rect);
  }
  root.append(group);
  const head = svg("line", { x1: LABEL, x2: LABEL, y1: 0, y2: H, class: "playhead", visibility: "hidden" });
  root.append(head);
  return {
    node: root,
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
