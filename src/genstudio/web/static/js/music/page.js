// The music page's shared state: its elements (filled in by music.js at start) and the melodies it knows.

export const $ = (id) => document.getElementById(id);
export const el = {};
/** Asset id -> {id, label, upload, track}: every melody the forms can start from. */
export const melodies = new Map();

export const short = (id) => id.slice(0, 8);

/** The MIDI track chosen for an uploaded melody, or undefined (gallery melodies have one line). */
export function trackOf(id) {
  const m = melodies.get(id);
  return m && m.upload && m.track !== null && m.track !== undefined ? m.track : undefined;
}
