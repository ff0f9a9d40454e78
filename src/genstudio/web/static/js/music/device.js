// Melodies made in this browser (music-ondevice.js): sampling, a path between two of them or between two
// gallery melodies, and their cards, played through Web Audio. Nothing here is saved on the server.

import { api, getToken } from "../api.js";
import { make, show } from "../ui.js";
import { clearFormError, showFormError } from "./forms.js";
import { $, el, melodies } from "./page.js";
import { synthPlay } from "./player.js";
import { STEPS_PER_BAR, pianoRoll } from "./roll.js";

let onDevice = null;

// Melodies made on this device keep their model tokens, so a path between two of them needs no server.
const devicePath = { start: null, end: null };

function updateDevicePath() {
  const ready = devicePath.start && devicePath.end;
  el.ondeviceInterpolate.disabled = !ready;
  const name = (x) => (x ? x.label : "none");
  el.ondevicePick.textContent = `Start: ${name(devicePath.start)} · End: ${name(devicePath.end)}`;
}

function onDeviceCard(rows, bars, label, details, tempo, tokens) {
  const li = make("li", undefined, "card melody ondevice");
  const roll = pianoRoll(rows, bars, label);
  const box = make("div", undefined, "roll-box");
  box.append(roll.node);
  const info = make("div", undefined, "melody-info");
  const title = make("p", label, "card-prompt melody-title");
  info.append(title, make("p", details, "hint"));
  const actions = make("div", undefined, "card-actions player");
  const play = make("button", "Play", "play");
  play.type = "button";
  play.setAttribute("aria-pressed", "false");
  play.setAttribute("aria-label", `Play ${label}`);
  let stop = null;
  const setPlaying = (playing) => {
    play.textContent = playing ? "Stop" : "Play";
    play.setAttribute("aria-pressed", String(playing));
    li.dataset.playing = String(playing);
  };
  play.addEventListener("click", () => {
    if (stop) {
      stop();
      return;
    }
    setPlaying(true);
    stop = synthPlay(rows, tempo, roll, () => {
      stop = null;
      setPlaying(false);
    });
  });
  actions.append(play);
  if (tokens) {
    for (const end of ["start", "end"]) {
      const pick = make("button", end === "start" ? "Start" : "End");
      pick.type = "button";
      pick.setAttribute("aria-label", `Use ${label} as the ${end} of an on-device path`);
      pick.addEventListener("click", () => {
        devicePath[end] = { tokens, label };
        updateDevicePath();
      });
      actions.append(pick);
    }
  }
  li.append(box, info, actions);
  return li;
}

async function loadOnDevice() {
  onDevice = onDevice || (await import("../music-ondevice.js"));
  const token = getToken();
  await onDevice.load("/api/music/onnx/", token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  return onDevice;
}

/** The Interpolate form's start and end (gallery melodies), interpolated in the browser. */
async function interpolateGalleryOnDevice() {
  const form = el.interpolateForm;
  clearFormError(form);
  const ids = [el.iStart.value, el.iEnd.value];
  const names = ["start", "end"];
  for (let i = 0; i < 2; i += 1) {
    const entry = melodies.get(ids[i]);
    if (!ids[i] || !entry || entry.upload) {
      const line = !ids[i]
        ? `${names[i]}: choose a ${names[i]} melody`
        : `${names[i]}: uploaded MIDI files interpolate on the server (press Interpolate)`;
      showFormError(form, [line], [names[i]]);
      return;
    }
  }
  const button = $("i-ondevice");
  button.disabled = true;
  show(el.ondeviceStatus);
  try {
    el.ondeviceStatus.textContent = "Loading the model into this browser…";
    await loadOnDevice();
    const metas = await Promise.all(ids.map((id) => api(`/api/assets/${id}/meta`)));
    const tokens = metas.map((m) => onDevice.encodeNotes(m.params.notes.filter((n) => n[1] < onDevice.config().num_steps)));
    devicePath.start = { tokens: tokens[0], label: melodies.get(ids[0]).label };
    devicePath.end = { tokens: tokens[1], label: melodies.get(ids[1]).label };
    updateDevicePath();
    show(el.ondevicePanel);
    el.ondeviceSteps.value = String(Math.min(16, Math.max(2, Number(el.iSteps.value) || 5)));
    await interpolateOnDevice();
  } catch (err) {
    el.ondeviceStatus.textContent = `On-device interpolation is not available: ${err.message || err}`;
  } finally {
    button.disabled = false;
  }
}

async function interpolateOnDevice() {
  const status = el.ondeviceStatus;
  const { start, end } = devicePath;
  if (!start || !end || !onDevice) return;
  el.ondeviceInterpolate.disabled = true;
  show(status);
  try {
    const steps = Math.min(16, Math.max(2, Number(el.ondeviceSteps.value) || 5));
    const t0 = performance.now();
    const result = await onDevice.interpolate(start.tokens, end.tokens, steps, 0, 1);
    const ms = performance.now() - t0;
    const bars = Math.max(2, Math.round(onDevice.config().num_steps / STEPS_PER_BAR));
    const tempo = Math.min(300, Math.max(20, Number(el.sTempo.value) || 120));
    const made = result.notes.map((notes, i) => {
      const rows = notes.map((x) => [x.pitch, x.start, x.end]);
      const label = `On-device path ${i + 1}/${steps}`;
      const details = `${rows.length} notes · from ${start.label} to ${end.label} · not saved`;
      return onDeviceCard(rows, bars, label, details, tempo, result.tokens[i]);
    });
    el.ondeviceResults.prepend(...made);
    status.textContent = `Interpolated ${steps} melodies in this browser in ${Math.round(ms)} ms.`;
  } catch (err) {
    status.textContent = `On-device interpolation failed: ${err.message || err}`;
  } finally {
    updateDevicePath();
  }
}

async function sampleOnDevice() {
  const button = el.ondeviceButton;
  const status = el.ondeviceStatus;
  button.disabled = true;
  show(status);
  try {
    status.textContent = "Loading the model into this browser…";
    await loadOnDevice();
    const n = Math.min(onDevice.MAX_BATCH, Math.max(1, Number(el.sN.value) || 1));
    const seed = !el.sSeedRandom.checked && el.sSeed.value.trim() !== "" ? Number(el.sSeed.value) : undefined;
    const temperature = Number(el.sTemp.value);
    const t0 = performance.now();
    const result = await onDevice.sample(n, temperature, seed);
    const ms = performance.now() - t0;
    const bars = Math.max(2, Math.round(onDevice.config().num_steps / STEPS_PER_BAR));
    const tempo = Math.min(300, Math.max(20, Number(el.sTempo.value) || 120));
    const made = result.notes.map((notes, i) => {
      const rows = notes.map((x) => [x.pitch, x.start, x.end]);
      const label = `On-device melody ${i + 1} · seed ${result.seed}`;
      return onDeviceCard(rows, bars, label, `${rows.length} notes · mood ${temperature} · not saved`, tempo, result.tokens[i]);
    });
    el.ondeviceResults.prepend(...made);
    show(el.ondevicePanel);
    status.textContent = `Made ${n} melod${n === 1 ? "y" : "ies"} in this browser in ${Math.round(ms)} ms (seed ${result.seed}).`;
  } catch (err) {
    status.textContent = `On-device sampling is not available: ${err.message || err}`;
  } finally {
    button.disabled = false;
  }
}

/** Wire the on-device buttons of the Sample and Interpolate forms and of the on-device panel. */
export function wireOnDevice() {
  el.ondeviceButton.addEventListener("click", sampleOnDevice);
  el.ondeviceInterpolate.addEventListener("click", interpolateOnDevice);
  $("i-ondevice").addEventListener("click", interpolateGalleryOnDevice);
}
