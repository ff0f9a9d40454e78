// The melodies a form can start from: gallery melodies and uploads in the start / end / source lists, and
// the "Use as start", "Use as end", "Vary this", "Continue this" and "Harmonize this" buttons that pick one.

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

// Each button: the list it sets and the tab that list is on.
const ROLES = {
  start: ["iStart", "interpolate"], end: ["iEnd", "interpolate"], source: ["vSource", "vary"],
  continue: ["cSource", "continue"], harmonize: ["hSource", "harmonize"],
};

function useAs(role, id) {
  const [list, tab] = ROLES[role];
  const target = el[list];
  target.value = id;
  selectTab(tab);
  clearFormError(target.form);
  target.focus({ preventScroll: true });
  el.compose.scrollIntoView({ block: "start", behavior: "smooth" });
}

export function wireUseButtons(node, id) {
  node.querySelector(".use-start").addEventListener("click", () => useAs("start", id));
  node.querySelector(".use-end").addEventListener("click", () => useAs("end", id));
  node.querySelector(".vary-this").addEventListener("click", () => useAs("source", id));
  node.querySelector(".continue-this").addEventListener("click", () => useAs("continue", id));
  node.querySelector(".harmonize-this").addEventListener("click", () => useAs("harmonize", id));
}
