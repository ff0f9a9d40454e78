// MIDI uploads: the file's melody line, what was dropped from it, its track choice, and the buttons that
// use it in a form.

import { api, uploadForm } from "../api.js";
import { make, show } from "../ui.js";
import { registerMelody, wireUseButtons } from "./picks.js";
import { $, el, melodies } from "./page.js";

function dropSummary(melody) {
  const dropped = Object.values(melody.dropped || {}).reduce((a, b) => a + b, 0);
  const head = `Melody: ${melody.notes} notes in ${melody.bars} bars from track ${melody.track}` +
    (melody.tracks > 1 ? ` of ${melody.tracks}` : "") + ".";
  if (!dropped) return `${head} Nothing was dropped.`;
  const text = melody.summary || `${dropped} notes`;
  return `${head} ${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

async function fillTracks(node, id, melody) {
  const box = node.querySelector(".upload-track");
  const select = node.querySelector(".track-select");
  const label = box.querySelector("label");
  select.id = `track-${id}`;
  label.htmlFor = select.id;
  let tracks = null;
  try {
    tracks = (await api(`/api/music/tracks/${encodeURIComponent(id)}`)).tracks;
  } catch {
    /* list the track numbers only */
  }
  const list = tracks || Array.from({ length: melody.tracks }, (_, i) => ({ index: i }));
  for (const t of list) {
    let text = `Track ${t.index}`;
    if (t.name) text += `: ${t.name}`;
    if (t.notes !== undefined) text += ` (${t.notes} notes${t.polyphonic ? ", chords" : ""}${t.is_drum ? ", drums" : ""})`;
    const option = make("option", text);
    option.value = String(t.index);
    option.disabled = Boolean(t.is_drum) || t.notes === 0;
    select.append(option);
  }
  select.value = String(melody.track);
  select.addEventListener("change", () => {
    melodies.get(id).track = Number(select.value);
  });
  show(box);
}

/** The "Upload a MIDI file" input's change. */
export async function uploadMidi() {
  const file = el.midiFile.files[0];
  if (!file) return;
  el.uploadError.textContent = "";
  show(el.uploadError, false);
  try {
    const answer = await api("/api/uploads", { method: "POST", body: uploadForm(file) });
    if (answer.kind !== "midi" || !answer.melody) throw new Error(`${file.name} is not a MIDI file (${answer.kind})`);
    const melody = answer.melody;
    const node = $("upload-template").content.firstElementChild.cloneNode(true);
    node.dataset.assetId = answer.asset_id;
    const name = node.querySelector(".upload-name");
    name.textContent = file.name;
    name.id = `upload-${answer.asset_id}`;
    for (const b of node.querySelectorAll("button")) b.setAttribute("aria-describedby", name.id);
    node.querySelector(".upload-summary").textContent = dropSummary(melody);
    wireUseButtons(node, answer.asset_id);
    el.uploads.prepend(node);
    registerMelody({ id: answer.asset_id, label: `Upload: ${file.name}`, upload: true, track: melody.track });
    if (melody.tracks > 1) await fillTracks(node, answer.asset_id, melody);
  } catch (err) {
    el.uploadError.textContent = `${file.name}: ${err.message}`;
    show(el.uploadError);
  } finally {
    el.midiFile.value = "";
  }
}
