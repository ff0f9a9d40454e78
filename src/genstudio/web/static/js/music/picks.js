// The melodies a form can start from: gallery melodies and uploads in the start / end / source lists, and
// the "Use as start", "Use as end" and "Vary this" buttons that pick one.

import { make } from "../ui.js";
import { clearFormError, selectTab } from "./forms.js";
import { el, melodies } from "./page.js";

/** Offer a melody ({id, label, upload, track, append}) in every list; `append`: at the end (older pages). */
export function registerMelody(entry) {
  const known = melodies.has(entry.id);
  melodies.set(entry.id, { ...(melodies.get(entry.id) || {}), ...entry });
  if (known) return;
  for (const select of el.picks) {
    const option = make("option", entry.label);
    option.value = entry.id;
    // Uploads and new results first, after the placeholder; older gallery pages at the end.
    if (entry.append) select.append(option);
    else select.insertBefore(option, select.options[1] || null);
  }
}

/** A deleted melody leaves every list (a list it was chosen in falls back to "Choose a melody…"). */
export function forgetMelody(id) {
  melodies.delete(id);
  for (const select of el.picks) {
    for (const option of [...select.options]) if (option.value === id) option.remove();
  }
}

function useAs(role, id) {
  const target = { start: el.iStart, end: el.iEnd, source: el.vSource }[role];
  target.value = id;
  selectTab(role === "source" ? "vary" : "interpolate");
  clearFormError(target.form);
  target.focus({ preventScroll: true });
  el.compose.scrollIntoView({ block: "start", behavior: "smooth" });
}

export function wireUseButtons(node, id) {
  node.querySelector(".use-start").addEventListener("click", () => useAs("start", id));
  node.querySelector(".use-end").addEventListener("click", () => useAs("end", id));
  node.querySelector(".vary-this").addEventListener("click", () => useAs("source", id));
}
