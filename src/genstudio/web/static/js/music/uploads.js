// MIDI uploads: the file's melody line (a piano roll that plays in the browser), what was dropped from it,
// its track choice, the buttons that use it in a form, and delete. Uploads stay listed after a reload: the
// server lists them (GET /api/uploads?kind=midi); the track chosen for each is remembered in this browser.

import { api, uploadForm } from "../api.js";
import { cardError } from "../gallery.js";
import { make, show } from "../ui.js";
import { forgetMelody, registerMelody, wireUseButtons } from "./picks.js";
import { $, el, melodies } from "./page.js";
import { synthPlay } from "./player.js";
import { pianoRoll } from "./roll.js";

const STORE_KEY = "genstudio.music.uploads";
const REMEMBERED = 50;

/** [{id, name, track}] newest first: the uploads of this browser. */
function remembered() {
  try {
    const list = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(list) ? list.filter((u) => u && typeof u.id === "string") : [];
  } catch {
    return [];
  }
}

function remember(list) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(list.slice(0, REMEMBERED)));
  } catch {
    /* private mode or full: the list lives for this page only */
  }
}

const rememberUpload = (entry) => remember([entry, ...remembered().filter((u) => u.id !== entry.id)]);
const forgetUpload = (id) => remember(remembered().filter((u) => u.id !== id));

function updateRemembered(id, change) {
  remember(remembered().map((u) => (u.id === id ? { ...u, ...change } : u)));
}

function dropSummary(melody) {
  const dropped = Object.values(melody.dropped || {}).reduce((a, b) => a + b, 0);
  const head = `Melody: ${melody.notes} notes in ${melody.bars} bars from track ${melody.track}` +
    (melody.tracks > 1 ? ` of ${melody.tracks}` : "") + ".";
  if (!dropped) return `${head} Nothing was dropped.`;
  const text = melody.summary || `${dropped} notes`;
  return `${head} ${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/** The upload's piano roll and its Play button (Web Audio), when the server gave the melody's notes. */
function showMelody(node, melody, name) {
  const box = node.querySelector(".roll-box");
  const play = node.querySelector(".play");
  const notes = Array.isArray(melody.note_list) ? melody.note_list : null;
  if (node.stopPlaying) node.stopPlaying();
  node.querySelector(".upload-summary").textContent = dropSummary(melody);
  show(box, Boolean(notes));
  show(play, Boolean(notes));
  if (!notes) return;
  const roll = pianoRoll(notes, melody.bars || 2, `the melody of ${name}`);
  box.replaceChildren(roll.node);
  const setPlaying = (playing) => {
    play.textContent = playing ? "Stop" : "Play";
    play.setAttribute("aria-pressed", String(playing));
    node.dataset.playing = String(playing);
  };
  let stop = null;
  node.stopPlaying = () => stop && stop();
  play.onclick = () => {
    if (stop) {
      stop();
      return;
    }
    setPlaying(true);
    stop = synthPlay(notes, melody.tempo || 120, roll, () => {
      stop = null;
      setPlaying(false);
    });
  };
}

/** The track list (from GET /api/music/tracks/{id}); choosing one redraws the melody where the server says
 *  what that track's melody line is. */
function fillTracks(node, id, name, melody, tracks) {
  const box = node.querySelector(".upload-track");
  const select = node.querySelector(".track-select");
  const label = box.querySelector("label");
  select.id = `track-${id}`;
  label.htmlFor = select.id;
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
  select.addEventListener("change", async () => {
    const track = Number(select.value);
    melodies.get(id).track = track;
    updateRemembered(id, { track });
    cardError(node, "");
    try {
      const answer = await api(`/api/music/tracks/${encodeURIComponent(id)}?track=${track}`);
      if (answer.melody && answer.melody.track === track) {
        showMelody(node, { ...answer.melody, tracks: list.length }, name);
      }
    } catch (err) {
      cardError(node, err.message);
    }
  });
  show(box);
}

/** An upload's entry: at the top of the list (a new upload, or a remembered one shown oldest first). */
function showUpload(id, name, melody, tracks) {
  const node = $("upload-template").content.firstElementChild.cloneNode(true);
  node.dataset.assetId = id;
  const title = node.querySelector(".upload-name");
  title.textContent = name;
  title.id = `upload-${id}`;
  for (const b of node.querySelectorAll("button")) b.setAttribute("aria-describedby", title.id);
  showMelody(node, melody, name);
  wireUseButtons(node, id);
  node.querySelector(".upload-delete").addEventListener("click", async () => {
    if (!window.confirm(`Delete the upload “${name}”? This cannot be undone.`)) return;
    try {
      await api(`/api/assets/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (err) {
      if (err.status !== 404) {
        cardError(node, err.message);
        return;
      }
    }
    if (node.stopPlaying) node.stopPlaying();
    forgetUpload(id);
    forgetMelody(id);
    node.remove();
  });
  el.uploads.prepend(node);
  registerMelody({ id, label: `Upload: ${name}`, upload: true, track: melody.track });
  if (melody.tracks > 1) fillTracks(node, id, name, melody, tracks);
}

async function tracksOf(id, track) {
  const query = track === undefined || track === null ? "" : `?track=${track}`;
  return api(`/api/music/tracks/${encodeURIComponent(id)}${query}`);
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
    rememberUpload({ id: answer.asset_id, name: file.name });
    let tracks = null;
    if (melody.tracks > 1) {
      try {
        tracks = (await tracksOf(answer.asset_id)).tracks;
      } catch {
        /* list the track numbers only */
      }
    }
    showUpload(answer.asset_id, file.name, melody, tracks);
  } catch (err) {
    el.uploadError.textContent = `${file.name}: ${err.message}`;
    show(el.uploadError);
  } finally {
    el.midiFile.value = "";
  }
}

/** The server's MIDI uploads, newest first, with the track this browser chose for each; this browser's own
 * list when the server cannot be asked. */
async function uploadList() {
  const mine = new Map(remembered().map((u) => [u.id, u]));
  try {
    const page = await api(`/api/uploads?kind=midi&limit=${REMEMBERED}`);
    return page.items.map((item) => ({
      id: item.asset_id,
      name: item.name || mine.get(item.asset_id)?.name || "upload.mid",
      track: mine.get(item.asset_id)?.track,
    }));
  } catch {
    return [...mine.values()];
  }
}

/** The uploads made earlier, asked of the server again (one deleted there is forgotten). */
export async function loadUploads() {
  const list = await uploadList();
  const answers = await Promise.all(list.map((u) => tracksOf(u.id, u.track).catch((err) => err)));
  list.forEach((u, i) => {
    if (answers[i] instanceof Error && answers[i].status === 404) forgetUpload(u.id);
  });
  // Oldest first, each at the top: the newest ends up first, as when they were uploaded.
  for (let i = list.length - 1; i >= 0; i -= 1) {
    const answer = answers[i];
    const u = list[i];
    if (answer instanceof Error) {
      if (answer.status !== 404) {
        el.uploadError.textContent = `${u.name}: ${answer.message}`;
        show(el.uploadError);
      }
      continue;
    }
    const track = answer.melody.track ?? answer.default_track;
    const melody = { ...answer.melody, track, tracks: answer.tracks.length };
    showUpload(u.id, u.name, melody, answer.tracks);
    // A track chosen before the reload that the server could not describe stays chosen for the forms.
    if (u.track !== undefined && u.track !== null) melodies.get(u.id).track = u.track;
    const select = $(`track-${u.id}`);
    if (select && u.track !== undefined && u.track !== null) select.value = String(u.track);
  }
}
