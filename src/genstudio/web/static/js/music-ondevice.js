// On-device melody model: samples, encodes and interpolates 2-bar melodies in the browser with
// onnxruntime-web (single-threaded wasm), from the ONNX files the server exports (/api/music/onnx/).
// Seeds are reproducible in the browser; they do not give the server's melodies (another PRNG).

import * as ort from "../vendor/onnxruntime-web/ort.wasm.bundle.min.mjs";

ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which the page does not have
ort.env.wasm.proxy = false;
// The bundle carries its Emscripten loader and finds the .wasm next to itself (import.meta.url).

export const MAX_BATCH = 256;
export const MAX_TEMPERATURE = 5;
export const MAX_STEPS = 64;
const NO_EVENT = 0;
const NOTE_OFF = 1;
const FIRST_NOTE_ON = 2;

let model = null; // {config, encoder, decoder}
let loading = null;
let queue = Promise.resolve(); // one session run at a time: onnxruntime-web refuses concurrent runs

async function fetchChecked(url, headers, sha256) {
  const response = await fetch(url, { headers, credentials: "same-origin" });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  if (sha256 && globalThis.crypto?.subtle) { // subtle exists only in secure contexts (https, localhost)
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== sha256) throw new Error(`GET ${url}: sha256 ${hex} is not the expected ${sha256}`);
  }
  return new Uint8Array(bytes);
}

/** Fetch config.json and both graphs from `baseUrl` (default /api/music/onnx/) and open the sessions.
 *  `options.headers` is passed to fetch (e.g. {Authorization: "Bearer ..."} when the server has a token).
 *  Returns the model's config. Loading again with the same URL reuses the open sessions. */
export async function load(baseUrl = "/api/music/onnx/", options = {}) {
  const base = new URL(baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`, location.href).href;
  if (model && model.base === base) return model.config;
  if (loading && loading.base === base) return (await loading.promise).config;
  const promise = (async () => {
    const headers = options.headers || {};
    const config = JSON.parse(new TextDecoder().decode(await fetchChecked(`${base}config.json`, headers)));
    const opts = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const [enc, dec] = await Promise.all(
      ["melody_encoder.onnx", "melody_decoder.onnx"].map((f) => fetchChecked(base + f, headers, config.files?.[f]?.sha256)),
    );
    const encoder = await ort.InferenceSession.create(enc, opts);
    const decoder = await ort.InferenceSession.create(dec, opts);
    return { base, config, encoder, decoder };
  })();
  loading = { base, promise };
  try {
    const previous = model;
    model = await promise;
    if (previous) await Promise.all([previous.encoder.release(), previous.decoder.release()]);
  } finally {
    loading = null;
  }
  return model.config;
}

function need() {
  if (!model) throw new Error("call load() first");
  return model;
}

function run(session, feeds) {
  const result = queue.then(() => session.run(feeds));
  queue = result.catch(() => {});
  return result;
}

// mulberry32: a small, well-mixed 32-bit PRNG. 24 bits per uniform, so each is exact in float32 and < 1.
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) >>> 8;
  };
  return {
    uniform: () => next() / 16777216,
    normal() { // Box-Muller; 1 - u lies in (0, 1], so the log is finite
      const u1 = next() / 16777216;
      const u2 = next() / 16777216;
      return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    },
  };
}

function checkSeed(seed) {
  if (seed === undefined || seed === null) return crypto.getRandomValues(new Uint32Array(1))[0];
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in 0-${0xffffffff}, got ${seed}`);
  return seed;
}

function checkTemperature(temperature) {
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0 || temperature > MAX_TEMPERATURE) {
    throw new RangeError(`temperature must be a number in 0-${MAX_TEMPERATURE}, got ${temperature}`);
  }
  return temperature;
}

function checkCount(value, name, min, max) {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer in ${min}-${max}, got ${value}`);
  return value;
}

function flatRows(rows, width, name) {
  if (!Array.isArray(rows) || rows.length === 0) throw new RangeError(`${name} must be a non-empty array of rows`);
  const flat = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    if (row.length !== width) throw new RangeError(`${name}[${i}] must hold ${width} numbers, got ${row.length}`);
    for (let j = 0; j < width; j++) {
      const v = Number(row[j]);
      if (!Number.isFinite(v)) throw new RangeError(`${name}[${i}][${j}] is not a finite number`);
      flat[i * width + j] = v;
    }
  });
  return flat;
}

/** Token row -> notes {pitch, start, end} on the 16th grid, as encoding.py's MelodyEncoding.decode:
 *  a note lasts until the next note-on or note-off, or the end of the window. */
export function decodeNotes(tokens, minPitch = need().config.min_pitch, classes = need().config.classes) {
  const notes = [];
  let pitch = -1;
  let start = 0;
  tokens.forEach((tok, step) => {
    if (!Number.isInteger(tok) || tok < 0 || tok >= classes) throw new RangeError(`token ${tok} at step ${step} is outside 0-${classes - 1}`);
    if (tok === NO_EVENT) return;
    if (pitch >= 0) {
      notes.push({ pitch, start, end: step });
      pitch = -1;
    }
    if (tok >= FIRST_NOTE_ON) {
      pitch = tok - FIRST_NOTE_ON + minPitch;
      start = step;
    }
  });
  if (pitch >= 0) notes.push({ pitch, start, end: tokens.length });
  return notes;
}

/** Notes ({pitch, start, end} or [pitch, start, end], monophonic) -> one token row, as encoding.py's
 *  MelodyEncoding.encode: clipped to the window; a note-off only where a note ends before the next starts. */
export function encodeNotes(notes, numSteps = need().config.num_steps) {
  const { min_pitch: minPitch, max_pitch: maxPitch } = need().config;
  const tokens = new Array(numSteps).fill(NO_EVENT);
  const list = notes
    .map((n) => (Array.isArray(n) ? { pitch: n[0], start: n[1], end: n[2] } : n))
    .sort((a, b) => a.start - b.start || a.end - b.end || a.pitch - b.pitch);
  let prevEnd = -1;
  for (const n of list) {
    const start = Math.max(n.start, 0);
    const end = Math.min(n.end, numSteps);
    if (end <= start) continue;
    if (start < prevEnd) throw new RangeError(`notes overlap at step ${start}: the melody is not monophonic`);
    if (n.pitch < minPitch || n.pitch > maxPitch) throw new RangeError(`pitch ${n.pitch} is outside ${minPitch}-${maxPitch}`);
    if (prevEnd > 0 && prevEnd < start && tokens[prevEnd] === NO_EVENT) tokens[prevEnd] = NOTE_OFF;
    tokens[start] = FIRST_NOTE_ON + n.pitch - minPitch;
    prevEnd = end;
  }
  if (prevEnd > 0 && prevEnd < numSteps) tokens[prevEnd] = NOTE_OFF;
  return tokens;
}

function rowsOf(data, n, width, map = Number) {
  return Array.from({ length: n }, (_, i) => Array.from(data.subarray(i * width, (i + 1) * width), map));
}

/** The sampler graph on explicit inputs: z [n][z_size], uniforms u [n][num_steps] in [0, 1).
 *  Returns token rows; the same inputs give the same tokens as torch's MusicVAE.decode_tokens_uniform. */
export async function decodeWith(z, u, temperature) {
  const { config, decoder } = need();
  checkTemperature(temperature);
  checkCount(z.length, "the number of z rows", 1, MAX_BATCH);
  if (u.length !== z.length) throw new RangeError(`u must have ${z.length} rows like z, got ${u.length}`);
  const uFlat = flatRows(u, config.num_steps, "u");
  if (uFlat.some((v) => v < 0 || v >= 1)) throw new RangeError("u must lie in [0, 1)");
  const out = await run(decoder, {
    z: new ort.Tensor("float32", flatRows(z, config.z_size, "z"), [z.length, config.z_size]),
    temperature: new ort.Tensor("float32", Float32Array.of(temperature), []),
    u: new ort.Tensor("float32", uFlat, [z.length, config.num_steps]),
  });
  return rowsOf(out.tokens.data, z.length, config.num_steps);
}

function drawUniforms(rng, n, width) {
  return Array.from({ length: n }, () => Array.from({ length: width }, rng.uniform));
}

async function decodeSeeded(z, temperature, seed, rng) {
  const u = drawUniforms(rng, z.length, need().config.num_steps);
  const tokens = await decodeWith(z, u, temperature);
  return { seed, temperature, tokens, notes: tokens.map((row) => decodeNotes(row)) };
}

/** `n` new melodies: z ~ N(0, I) then the sampler, all drawn from `seed` (random when omitted).
 *  Returns {seed, temperature, tokens: number[n][steps], notes: {pitch, start, end}[n][]}. */
export async function sample(n, temperature = 0.5, seed = undefined) {
  const { config } = need();
  checkCount(n, "n", 1, MAX_BATCH);
  checkTemperature(temperature);
  seed = checkSeed(seed);
  const rng = makeRng(seed);
  const z = Array.from({ length: n }, () => Array.from({ length: config.z_size }, rng.normal));
  return decodeSeeded(z, temperature, seed, rng);
}

/** Token rows -> {mu, sigma}, each number[n][z_size] (the posterior; mu is what interpolation uses). */
export async function encode(tokensRows) {
  const { config, encoder } = need();
  checkCount(Array.isArray(tokensRows) ? tokensRows.length : 0, "the number of token rows", 1, MAX_BATCH);
  const flat = new BigInt64Array(tokensRows.length * config.num_steps);
  tokensRows.forEach((row, i) => {
    if (!row || row.length !== config.num_steps) throw new RangeError(`tokens[${i}] must hold ${config.num_steps} tokens`);
    row.forEach((tok, j) => {
      if (!Number.isInteger(tok) || tok < 0 || tok >= config.classes) throw new RangeError(`tokens[${i}][${j}] = ${tok} is outside 0-${config.classes - 1}`);
      flat[i * config.num_steps + j] = BigInt(tok);
    });
  });
  const out = await run(encoder, { tokens: new ort.Tensor("int64", flat, [tokensRows.length, config.num_steps]) });
  return { mu: rowsOf(out.mu.data, tokensRows.length, config.z_size), sigma: rowsOf(out.sigma.data, tokensRows.length, config.z_size) };
}

/** Spherical interpolation between vectors a and b at t in [0, 1], linear when nearly parallel (as model.py's slerp). */
export function slerp(a, b, t) {
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const na = norm(a);
  const nb = norm(b);
  const cos = Math.min(1, Math.max(-1, a.reduce((s, x, i) => s + (x / na) * (b[i] / nb), 0)));
  const omega = Math.acos(cos);
  const so = Math.sin(omega);
  if (Math.abs(so) < 1e-6) return a.map((x, i) => (1 - t) * x + t * b[i]);
  const ka = Math.sin((1 - t) * omega) / so;
  const kb = Math.sin(t * omega) / so;
  return a.map((x, i) => ka * x + kb * b[i]);
}

/** `steps` melodies along the slerp from mu(tokensA) to mu(tokensB), endpoints included.
 *  Returns what sample() returns, plus z (number[steps][z_size]). */
export async function interpolate(tokensA, tokensB, steps = 8, temperature = 0, seed = undefined) {
  checkCount(steps, "steps", 2, MAX_STEPS);
  checkTemperature(temperature);
  seed = checkSeed(seed);
  const { mu } = await encode([tokensA, tokensB]);
  const z = Array.from({ length: steps }, (_, i) => slerp(mu[0], mu[1], i / (steps - 1)));
  return { ...(await decodeSeeded(z, temperature, seed, makeRng(seed))), z };
}

export function config() {
  return need().config;
}
