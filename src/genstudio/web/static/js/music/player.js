// Playing a melody with a moving playhead on its piano roll: a card's WAV in an <audio> element (one melody
// at a time, a click on the roll seeks), or notes made on this device through Web Audio.

import { cardError } from "../gallery.js";

let audioContext = null;

/**
 * A gallery card's Play button and <audio>: the WAV comes from `loadSrc()` on the first press.
 * `tempo` (BPM) maps the audio's time to the roll's 16th steps.
 */
export function wirePlayer(node, roll, tempo, loadSrc) {
  const audio = node.querySelector("audio");
  const button = node.querySelector(".play");
  const stepSeconds = 60 / (tempo || 120) / 4;
  let frame = 0;
  const tick = () => {
    roll.setPlayhead(audio.currentTime / stepSeconds);
    if (!audio.paused && !audio.ended) frame = requestAnimationFrame(tick);
  };
  const setPlaying = (playing) => {
    button.textContent = playing ? "Pause" : "Play";
    button.setAttribute("aria-pressed", String(playing));
    node.dataset.playing = String(playing);
  };
  audio.addEventListener("play", () => {
    // One melody at a time: starting this one pauses any other.
    for (const other of document.querySelectorAll("audio")) if (other !== audio && !other.paused) other.pause();
    setPlaying(true);
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(tick);
  });
  audio.addEventListener("pause", () => setPlaying(false));
  audio.addEventListener("ended", () => {
    setPlaying(false);
    roll.setPlayhead(null);
  });
  audio.addEventListener("error", () => {
    setPlaying(false);
    button.disabled = false;
    cardError(node, "Could not load the audio.");
  });
  roll.node.addEventListener("click", (event) => {
    const step = roll.stepAt(event.clientX);
    if (step === null || !audio.getAttribute("src")) return;
    audio.currentTime = step * stepSeconds;
    roll.setPlayhead(step);
  });
  button.addEventListener("click", async () => {
    cardError(node, "");
    if (!audio.paused) {
      audio.pause();
      return;
    }
    if (!audio.getAttribute("src")) {
      button.disabled = true;
      button.textContent = "Loading…";
      try {
        audio.src = await loadSrc();
      } catch (err) {
        cardError(node, err.message);
        setPlaying(false);
        return;
      } finally {
        button.disabled = false;
      }
    }
    try {
      await audio.play();
    } catch (err) {
      if (err.name !== "AbortError") cardError(node, `Could not play: ${err.message}`);
      setPlaying(false);
    }
  });
}

/** Play notes [[pitch, start, end]] with a soft triangle wave (no server, no soundfont). Returns a stop(). */
export function synthPlay(notes, tempo, roll, done) {
  audioContext = audioContext || new AudioContext();
  const ctx = audioContext;
  const stepSeconds = 60 / tempo / 4;
  const t0 = ctx.currentTime + 0.05;
  const out = ctx.createGain();
  out.gain.value = 0.18;
  out.connect(ctx.destination);
  for (const [pitch, start, end] of notes) {
    const osc = ctx.createOscillator();
    const env = ctx.createGain();
    osc.type = "triangle";
    osc.frequency.value = 440 * 2 ** ((pitch - 69) / 12);
    const a = t0 + start * stepSeconds;
    const b = t0 + end * stepSeconds;
    env.gain.setValueAtTime(0, a);
    env.gain.linearRampToValueAtTime(1, a + 0.01);
    env.gain.setTargetAtTime(0, b - 0.03, 0.02);
    osc.connect(env).connect(out);
    osc.start(a);
    osc.stop(b + 0.1);
  }
  const length = Math.max(0, ...notes.map((n) => n[2])) * stepSeconds;
  let frame = 0;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    cancelAnimationFrame(frame);
    out.disconnect();
    roll.setPlayhead(null);
    done();
  };
  const tick = () => {
    const elapsed = ctx.currentTime - t0;
    if (elapsed > length + 0.1) return stop();
    roll.setPlayhead(Math.max(0, elapsed / stepSeconds));
    frame = requestAnimationFrame(tick);
  };
  ctx.resume().then(() => {
    frame = requestAnimationFrame(tick);
  });
  return stop;
}
