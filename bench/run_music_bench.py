"""Music studio benchmarks, side by side in one run (medians over repeats after warm-up, never from unit tests).

1. Latency of the melody model: sample 1 and 64 melodies, encode 64, interpolate (2 endpoints, 8 steps),
   with torch (1 thread and the default thread count) and with the exported ONNX graphs in onnxruntime
   (1 thread and its default), methods interleaved within each repeat so load on the machine hits all alike.
   Model time only: tokens in or out, no MIDI. When Debian's chromium and Playwright are present, the same
   four cases also run in the browser through static/js/music-ondevice.js (onnxruntime-web, wasm, 1 thread),
   timed inside the page after the others; those include the module's JS work (arrays, note decoding).
2. Quality: 512 samples at temperatures 0.5 and 1.0 (torch and onnxruntime) next to held-out real windows
   (training/music/data/windows-pd.npz, valid split, when present) and two random baselines: uniformly
   random tokens, and real rhythms with random pitches (uniform over each window's own range).

    nice -n 10 .venv/bin/python bench/run_music_bench.py [--model DIR] [--repeats 15] [--out bench/results/music.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from genstudio.music.encoding import Note
from genstudio.music.metrics import melody_stats
from genstudio.music.model import MelodyVAE, slerp
from genstudio.music.onnx_export import BUILTIN_MELODY_MODEL, DECODER_FILE, ENCODER_FILE, export_onnx

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "src" / "genstudio" / "web" / "static"
CHROMIUM = Path("/usr/bin/chromium")
DATA = REPO / "training" / "music" / "data" / "windows-pd.npz"
STEPS = 32


class OnnxMelody:
    """The exported encoder and sampler in onnxruntime, with numpy slerp and noise, as the browser runs them."""

    def __init__(self, folder: Path, threads: int) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0 = onnxruntime's default (one per core)
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(folder / ENCODER_FILE), opts, providers=providers)
        self.decoder = ort.InferenceSession(str(folder / DECODER_FILE), opts, providers=providers)
        self.z_size = self.decoder.get_inputs()[0].shape[1]

    def decode(self, z: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
        u = rng.random((len(z), STEPS), dtype=np.float32)
        feed = {"z": z.astype(np.float32), "temperature": np.array(temperature, dtype=np.float32), "u": u}
        return self.decoder.run(None, feed)[0]

    def sample(self, n: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
        return self.decode(rng.standard_normal((n, self.z_size), dtype=np.float32), temperature, rng)

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        return self.encoder.run(None, {"tokens": tokens.astype(np.int64)})[0]

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int, rng: np.random.Generator) -> np.ndarray:
        mu = torch.from_numpy(self.encode(np.stack([a, b])))
        z = torch.stack([slerp(mu[0], mu[1], i / (steps - 1)) for i in range(steps)]).numpy()
        return self.decode(z, 0.0, rng)


def torch_cases(vae: MelodyVAE, tokens64: torch.Tensor, pair: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The server's torch path: MelodyVAE's sampling (multinomial) and encoding, on token tensors."""
    model, z_size = vae.model, vae.model.config.z_size

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        return model.decode_tokens(torch.randn(n, z_size), 1.0)

    @torch.no_grad()
    def interpolate() -> torch.Tensor:
        mu, _ = model.encode(pair)
        z = torch.stack([slerp(mu[0], mu[1], i / 7) for i in range(8)])
        return model.decode_tokens(z, 0.0)

    @torch.no_grad()
    def encode() -> Any:
        return model.encode(tokens64)

    return {
        "sample_1": lambda: sample(1),
        "sample_64": lambda: sample(64),
        "encode_64": encode,
        "interpolate_2x8": interpolate,
    }


def onnx_cases(m: OnnxMelody, tokens64: np.ndarray, pair: np.ndarray) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(0)
    return {
        "sample_1": lambda: m.sample(1, 1.0, rng),
        "sample_64": lambda: m.sample(64, 1.0, rng),
        "encode_64": lambda: m.encode(tokens64),
        "interpolate_2x8": lambda: m.interpolate(pair[0], pair[1], 8, rng),
    }


def latency(vae: MelodyVAE, onnx_dir: Path, repeats: int, warmup: int) -> dict[str, dict[str, float]]:
    default_threads = torch.get_num_threads()
    tokens64 = vae.tokens(vae.sample(64, 0.5, seed=1))
    pair = tokens64[:2]
    methods: dict[str, tuple[Callable[[], None], dict[str, Callable[[], Any]]]] = {
        "torch_1_thread": (lambda: torch.set_num_threads(1), torch_cases(vae, tokens64, pair)),
        f"torch_{default_threads}_threads": (
            lambda: torch.set_num_threads(default_threads),
            torch_cases(vae, tokens64, pair),
        ),
        "onnxruntime_1_thread": (lambda: None, onnx_cases(OnnxMelody(onnx_dir, 1), tokens64.numpy(), pair.numpy())),
        "onnxruntime_default_threads": (
            lambda: None,
            onnx_cases(OnnxMelody(onnx_dir, 0), tokens64.numpy(), pair.numpy()),
        ),
    }
    times: dict[str, dict[str, list[float]]] = {m: {c: [] for c in cases} for m, (_, cases) in methods.items()}
    for rep in range(warmup + repeats):
        for method, (setup, cases) in methods.items():
            setup()
            next(iter(cases.values()))()  # untimed: the first call after a thread-count switch pays for it
            for case, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                if rep >= warmup:
                    times[method][case].append(dt)
    torch.set_num_threads(default_threads)
    return {m: {c: statistics.median(v) * 1000 for c, v in cs.items()} for m, cs in times.items()}


@contextmanager
def static_server(onnx_dir: Path) -> Iterator[str]:
    """The web static folder and the exported files, as the app serves them, under the app's CSP."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from genstudio.api.app import CSP

    def index(_request: Any) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>music bench</title>", headers={"Content-Security-Policy": CSP})

    app = Starlette(
        routes=[
            Route("/", index),
            Mount("/static", StaticFiles(directory=STATIC)),
            Mount("/api/music/onnx", StaticFiles(directory=onnx_dir)),
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


BROWSER_BENCH = """async ([repeats, warmup]) => {
  const m = await import('/static/js/music-ondevice.js');
  await m.load('/api/music/onnx/');
  const median = async (f) => {
    for (let i = 0; i < warmup; i++) await f();
    const ts = [];
    for (let i = 0; i < repeats; i++) { const t = performance.now(); await f(); ts.push(performance.now() - t); }
    ts.sort((a, b) => a - b);
    return ts[Math.floor(ts.length / 2)];
  };
  const s = await m.sample(64, 0.5, 1);
  return {
    sample_1: await median(() => m.sample(1, 1.0)),
    sample_64: await median(() => m.sample(64, 1.0)),
    encode_64: await median(() => m.encode(s.tokens)),
    interpolate_2x8: await median(() => m.interpolate(s.tokens[0], s.tokens[1], 8, 0)),
  };
}"""


def browser_latency(onnx_dir: Path, repeats: int, warmup: int) -> tuple[dict[str, float] | None, str | None]:
    if not CHROMIUM.exists():
        return None, "no /usr/bin/chromium: no browser column"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, "playwright is not installed: no browser column"
    with static_server(onnx_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{base}/")
            return page.evaluate(BROWSER_BENCH, [repeats, warmup]), None
        finally:
            browser.close()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def random_pitches(real: list[list[Note]], rng: np.random.Generator) -> list[list[Note]]:
    return [
        [Note(int(rng.integers(min(x.pitch for x in m), max(x.pitch for x in m) + 1)), n.start, n.end) for n in m]
        for m in real
    ]


def quality(vae: MelodyVAE, onnx_dir: Path, n: int) -> tuple[dict[str, dict[str, float]], list[str]]:
    notes: list[str] = []
    rows: dict[str, dict[str, float]] = {}
    torch.set_num_threads(1)
    onnx = OnnxMelody(onnx_dir, 1)
    for t in (0.5, 1.0):
        rows[f"model T={t:g} (torch)"] = melody_stats(vae.sample(n, temperature=t, seed=0))
        rows[f"model T={t:g} (onnxruntime)"] = melody_stats(
            vae.melodies(torch.from_numpy(onnx.sample(n, t, np.random.default_rng(0))))
        )
    rng = np.random.default_rng(0)
    if DATA.is_file():
        valid = np.load(DATA)["valid"].astype(np.int64)
        real = vae.melodies(torch.from_numpy(valid))
        rows[f"real held-out windows ({len(valid):,})"] = melody_stats(real)
        rows["random pitches on real rhythms"] = melody_stats(random_pitches(real, rng))
    else:
        notes.append(f"{DATA.relative_to(REPO)} is absent (git-ignored; training/music/prepare_data.py): no real row")
    uniform = rng.integers(0, vae.model.num_classes, size=(n, STEPS))
    rows["uniformly random tokens"] = melody_stats(vae.melodies(torch.from_numpy(uniform)))
    return rows, notes


def markdown(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    cases = list(next(iter(lat.values())))
    lines = ["| ms (median) | " + " | ".join(lat) + " |", "|---" * (len(lat) + 1) + "|"]
    for c in cases:
        lines.append(f"| {c} | " + " | ".join(f"{lat[m][c]:.1f}" for m in lat) + " |")
    lines += ["", "| melodies | % notes in key | notes per 2 bars | pitch range (semitones) | empty |"]
    lines.append("|---|---|---|---|---|")
    for name, s in result["quality"].items():
        lines.append(
            f"| {name} | {100 * s['in_key']:.1f} | {s['notes_per_melody']:.2f} | {s['pitch_range']:.1f} | "
            f"{100 * s['empty']:.1f}% |"
        )
    lines += [f"\n{n}" for n in result["notes"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=BUILTIN_MELODY_MODEL)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "music.json")
    args = ap.parse_args()

    vae = MelodyVAE.from_pretrained(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = export_onnx(args.model, Path(tmp))
        export_s = time.perf_counter() - t0
        result: dict[str, Any] = {
            "model": str(args.model),
            "model_sha256": summary["source_sha256"],
            "params": sum(p.numel() for p in vae.model.parameters()),
            "machine": {
                "cpu": cpu_name(),
                "cores": os.cpu_count(),
                "load_avg_start": os.getloadavg(),
                "torch": torch.__version__,
                "onnxruntime": ort.__version__,
                "torch_default_threads": torch.get_num_threads(),
            },
            "onnx_export_s": export_s,
            "onnx_bytes": {name: meta["bytes"] for name, meta in summary["files"].items()},
            "repeats": args.repeats,
            "warmup": args.warmup,
        }
        result["latency_ms"] = latency(vae, Path(tmp), args.repeats, args.warmup)
        web, web_note = browser_latency(Path(tmp), args.repeats, args.warmup)
        if web is not None:
            result["latency_ms"]["onnxruntime_web_chromium_1_thread"] = web
        result["quality"], result["notes"] = quality(vae, Path(tmp), args.samples)
        result["notes"] += [web_note] if web_note else []
    result["machine"]["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(f".{args.out.name}.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    print(markdown(result))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
