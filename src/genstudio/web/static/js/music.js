// The music studio page: sample / compose, interpolate, vary, continue and harmonize as jobs, MIDI uploads, melodies made on this
// device, and a gallery of melodies. This file starts the page; each concern lives in a module of music/.
// Strings from a user or the server go into the page through textContent or attributes, never innerHTML.

import { onReady, registerServiceWorker, wireToken } from "./ui.js";
import { wireVerifyFile } from "./verify.js";
import { melodyGallery } from "./music/cards.js";
import { wireOnDevice } from "./music/device.js";
import { loadInstruments, wireForms } from "./music/forms.js";
import { $, el } from "./music/page.js";
import { loadUploads, uploadMidi } from "./music/uploads.js";

function init() {
  Object.assign(el, {
    compose: $("compose-title").parentElement,
    tabs: ["sample", "interpolate", "vary", "continue", "harmonize"].map((name) => $(`tab-${name}`)),
    sampleForm: $("sample-form"), interpolateForm: $("interpolate-form"), varyForm: $("vary-form"),
    continueForm: $("continue-form"), harmonizeForm: $("harmonize-form"),
    sN: $("s-n"), sBars: $("s-bars"), sTonic: $("s-tonic"), sMode: $("s-mode"), sTempo: $("s-tempo"),
    sInstrument: $("s-instrument"), sTemp: $("s-temperature"), sDensityOn: $("s-density-on"), sDensity: $("s-density"),
    sChords: $("s-chords"), sAccompaniment: $("s-accompaniment"), sSeed: $("s-seed"), sSeedRandom: $("s-seed-random"),
    iStart: $("i-start"), iEnd: $("i-end"), iSteps: $("i-steps"), iInstrument: $("i-instrument"), iTemp: $("i-temperature"),
    vSource: $("v-source"), vSim: $("v-similarity"), vN: $("v-n"), vTemp: $("v-temperature"),
    cSource: $("c-source"), cBars: $("c-bars"), cN: $("c-n"), cTempo: $("c-tempo"), cInstrument: $("c-instrument"),
    cTemp: $("c-temperature"), cSeed: $("c-seed"), cAccompaniment: $("c-accompaniment"),
    hSource: $("h-source"), hVoices: [...document.querySelectorAll("#harmonize-form input[name=voices]")], hN: $("h-n"),
    hTempo: $("h-tempo"), hInstrument: $("h-instrument"), hTemp: $("h-temperature"), hSeed: $("h-seed"),
    picks: [...document.querySelectorAll("select.melody-pick")],
    midiFile: $("midi-file"), uploads: $("uploads"), uploadError: $("upload-error"),
    verifyFile: $("verify-file"), verifyFileResult: $("verify-file-result"),
    jobs: $("jobs"), jobsEmpty: $("jobs-empty"), gallery: $("gallery"), galleryEmpty: $("gallery-empty"),
    galleryError: $("gallery-error"), loadMore: $("load-more"),
    ondeviceButton: $("ondevice-sample"), ondeviceStatus: $("ondevice-status"), ondevicePanel: $("ondevice-panel"),
    ondeviceResults: $("ondevice-results"), ondeviceInterpolate: $("ondevice-interpolate"),
    ondevicePick: $("ondevice-pick"), ondeviceSteps: $("od-steps"),
    tokenDialog: $("token-dialog"), tokenInput: $("token-input"), tokenError: $("token-error"), forgetToken: $("forget-token"),
  });

  wireToken(el);
  const gallery = melodyGallery();
  wireForms((assetIds) => gallery.add(assetIds));
  el.midiFile.addEventListener("change", uploadMidi);
  wireVerifyFile(el.verifyFile, el.verifyFileResult);
  wireOnDevice();
  // Offline shell + on-device model cache (sw.js); the page keeps composing on this device without a server.
  registerServiceWorker();

  // Instruments first: a 401 there asks for the token once, and the gallery and uploads then load with it.
  loadInstruments().then(() => Promise.all([gallery.load(), loadUploads()])).finally(() => {
    document.body.dataset.ready = "true";
  });
}

onReady(init);
