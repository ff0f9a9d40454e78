// A melody card of the gallery: its piano roll (with a piece's other parts and chords), player, sheet music,
// downloads, the buttons that use it in a form, and delete. An interpolation's results are kept together as a
// strip from its start to its end.

import { Gallery, wireDownload } from "../gallery.js";
import { make } from "../ui.js";
import { forgetMelody, registerMelody, wireUseButtons } from "./picks.js";
import { $, el, short } from "./page.js";
import { wirePlayer } from "./player.js";
import { partsOf, pianoRoll } from "./roll.js";
import { wireSheet } from "./sheet.js";

let gallery = null;

const OP_NAMES = {
  sample: "Melody", interpolate: "Interpolation", vary: "Variation", continue: "Continuation", harmonize: "Harmonization",
};

function melodyLabel(item) {
  const p = item.params || {};
  const op = OP_NAMES[p.op] || "Melody";
  const index = Number.isInteger(p.index) ? ` ${p.index + 1}` : "";
  return `${op}${index} · ${short(item.id)}`;
}

function statsText(p) {
  const s = p.stats || {};
  const parts = [];
  if (s.notes !== undefined) parts.push(`${s.notes} notes`);
  if (s.in_key !== undefined) parts.push(`${Math.round(s.in_key * 100)}% in key`);
  if (s.range !== undefined) parts.push(`range ${s.range} semitones`);
  return parts.join(", ") || "?";
}

/** "12 (4 given + 8 new)" for a continuation, else the bar count. */
function barsText(p) {
  if (p.bars === undefined) return "?";
  const given = Number(p.given_bars);
  return given > 0 && given < p.bars ? `${p.bars} (${given} given + ${p.bars - given} new)` : String(p.bars);
}

function wireDownloads(node, item) {
  const name = `genstudio-${short(item.id)}`;
  const links = [
    [".dl-midi", "", "mid", "MIDI"],
    [".dl-musicxml", "format=musicxml&", "musicxml", "MusicXML"],
    [".dl-wav", "format=wav&", "wav", "WAV"],
  ];
  for (const [selector, query, ext, label] of links) {
    const a = node.querySelector(selector);
    wireDownload(a, `${item.url}?${query}download=true`, `${name}.${ext}`, node);
    a.setAttribute("aria-label", `Download ${label} of ${melodyLabel(item)}`);
  }
}

function makeCard(item, { append }) {
  const p = item.params || {};
  const node = $("melody-template").content.firstElementChild.cloneNode(true);
  const label = melodyLabel(item);
  const notes = Array.isArray(p.notes) ? p.notes : [];
  const roll = pianoRoll(notes, p.bars || 2, label, {
    parts: partsOf(p),
    chords: Array.isArray(p.chords_at) ? p.chords_at : [],
    given: p.op === "continue" ? Number(p.given_bars) || 0 : 0,
    melodyName: p.part_name || "melody",
  });
  node.querySelector(".roll-box").append(roll.node);
  if (roll.legend) node.querySelector(".roll-box").after(roll.legend);
  const title = node.querySelector(".melody-title");
  title.textContent = `${label} · ${p.instrument_name || "piano"}`;
  title.id = `title-${item.id}`;
  for (const control of node.querySelectorAll("button, .downloads a")) control.setAttribute("aria-describedby", title.id);
  node.querySelector(".m-key").textContent = p.key || "?";
  node.querySelector(".m-tempo").textContent = p.tempo ? `${Math.round(p.tempo)} BPM` : "?";
  node.querySelector(".m-bars").textContent = barsText(p);
  node.querySelector(".m-seed").textContent = item.seed ?? p.seed ?? "?";
  node.querySelector(".m-stats").textContent = statsText(p);
  wirePlayer(node, roll, p.tempo, () => gallery.src(item.id, `${item.url}?format=wav`));
  wireSheet(node, item);
  wireDownloads(node, item);
  wireUseButtons(node, item.id);
  node.querySelector(".card-delete").addEventListener("click", () => {
    gallery.remove(item, node, `Delete the melody “${label}”? This cannot be undone.`);
  });
  registerMelody({ id: item.id, label: `${label} (${p.key || "?"}, ${p.bars || "?"} bars)`, upload: false, append });
  return node;
}

// An interpolation's results, by job: one strip each, its cards in `t` order from the start to the end.
const strips = new Map();

const stepOf = (p) => (Number.isFinite(p.t) ? p.t : Number.isInteger(p.index) ? p.index : 0);

function stepLabel(p) {
  const steps = Number(p.steps);
  if (p.index === 0 || p.t === 0) return "Start";
  if (p.t === 1 || (steps && p.index === steps - 1)) return "End";
  return Number.isInteger(p.index) ? `Step ${p.index + 1}${steps ? ` of ${steps}` : ""}` : `t = ${p.t}`;
}

function stripFor(item, append) {
  const p = item.params;
  let strip = strips.get(item.job_id);
  if (!strip) {
    const node = make("li", undefined, "strip");
    node.dataset.jobId = item.job_id;
    const title = make("p", `Interpolation from ${short(String(p.start || "?"))} to ${short(String(p.end || "?"))}`,
      "strip-title");
    title.id = `strip-${item.job_id}`;
    const cards = make("ol", undefined, "strip-cards");
    cards.setAttribute("aria-labelledby", title.id);
    node.append(title, cards);
    strip = { node, cards };
    strips.set(item.job_id, strip);
    if (append) el.gallery.append(node);
    else el.gallery.prepend(node);
  }
  return strip;
}

/** Where a new card goes: an interpolation's into its strip (in `t` order), any other into the list. */
function placeCard(node, item, append) {
  const p = item.params || {};
  if (p.op !== "interpolate" || !item.job_id) {
    if (append) el.gallery.append(node);
    else el.gallery.prepend(node);
    return;
  }
  const { cards } = stripFor(item, append);
  const t = stepOf(p);
  node.dataset.t = String(t);
  node.classList.add("in-strip");
  node.prepend(make("p", stepLabel(p), "strip-step"));
  const after = [...cards.children].find((c) => Number(c.dataset.t) > t);
  cards.insertBefore(node, after || null);
}

/** The page's gallery of melodies (studio=music). */
export function melodyGallery() {
  gallery = new Gallery({
    list: el.gallery, empty: el.galleryEmpty, error: el.galleryError, more: el.loadMore,
    studio: "music", kind: "music", makeCard, place: placeCard,
    onRemove: (item, node) => {
      node.querySelector("audio").pause();
      forgetMelody(item.id);
      const strip = strips.get(item.job_id);
      if (strip && !strip.cards.children.length) {
        strip.node.remove();
        strips.delete(item.job_id);
        gallery.updateEmpty();
      }
    },
  });
  return gallery;
}
