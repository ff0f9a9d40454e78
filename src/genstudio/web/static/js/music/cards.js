// A melody card of the gallery: its piano roll, player, sheet music, downloads, the buttons that use it in
// a form, and delete.

import { Gallery, wireDownload } from "../gallery.js";
import { forgetMelody, registerMelody, wireUseButtons } from "./picks.js";
import { $, el, short } from "./page.js";
import { wirePlayer } from "./player.js";
import { pianoRoll } from "./roll.js";
import { wireSheet } from "./sheet.js";

let gallery = null;

function melodyLabel(item) {
  const p = item.params || {};
  const op = { sample: "Melody", interpolate: "Interpolation", vary: "Variation" }[p.op] || "Melody";
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
  const roll = pianoRoll(notes, p.bars || 2, label);
  node.querySelector(".roll-box").append(roll.node);
  const title = node.querySelector(".melody-title");
  title.textContent = `${label} · ${p.instrument_name || "piano"}`;
  title.id = `title-${item.id}`;
  for (const control of node.querySelectorAll("button, .downloads a")) control.setAttribute("aria-describedby", title.id);
  node.querySelector(".m-key").textContent = p.key || "?";
  node.querySelector(".m-tempo").textContent = p.tempo ? `${Math.round(p.tempo)} BPM` : "?";
  node.querySelector(".m-bars").textContent = p.bars ?? "?";
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

/** The page's gallery of melodies (studio=music). */
export function melodyGallery() {
  gallery = new Gallery({
    list: el.gallery, empty: el.galleryEmpty, error: el.galleryError, more: el.loadMore,
    studio: "music", kind: "music", makeCard,
    onRemove: (item, node) => {
      node.querySelector("audio").pause();
      forgetMelody(item.id);
    },
  });
  return gallery;
}
