"""Music studio 2 benchmarks, side by side in one run: long melodies, Continue, Harmonize, latency.

1. Long-melody quality (16 bars): samples of the hierarchical model next to the chained 2-bar codes (the
   studio's fallback: a slerp between two random codes, one point per 2-bar segment, joined in one key),
   held-out real 16-bar windows (training/music/data/windows-pd-256.npz, valid split) and real rhythms
   with random pitches. Columns: notes in the best-fitting key, pitch range (median, and its ratio to the
   real windows' median), share of pieces whose last note is a tone of the tonic chord of their
   best-fitting key, notes per bar, and teacher-forced accuracy on the held-out windows (z = mu).
2. Continue: for held-out 16-bar windows, the first 8 bars are given and 8 more are written (hierarchical
   and chained), as the models write them (before the studio moves drifting new bars into the source's
   key); reported: how often the new part's best-fitting key signature is the given part's, and the ratio
   of notes per bar (new / given); the real second halves are the reference row.
3. Harmonize (held-out chorales of training/music/data/chorales.npz): each voice masked alone, the share
   of its eighth-note steps the model's argmax recovers (the paper's setting); Bach's soprano harmonized
   by Gibbs sampling: parallel fifths and octaves per 100 beats and notes out of voice range, ours next to
   Bach's own alto, tenor and bass.
4. Latency on this CPU (torch, 1 thread, medians after warm-up): sample 1 and 64 16-bar melodies,
   continue 8 bars (n = 4), harmonize 16 bars.

    nice -n 10 .venv/bin/python bench/run_music2_bench.py [--n 256] [--repeats 7] [--out bench/results/music2.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.music.coconet import Coconet, gibbs, out_of_range, parallel_perfects, reduce_parallels
from genstudio.music.encoding import MelodyEncoding, Note
from genstudio.music.harmonizer import harmonize
from genstudio.music.hierarchical import LongMelodyVAE
from genstudio.music.metrics import in_key_counts
from genstudio.music.model import MelodyVAE, slerp
from genstudio.music.service import join_segments
from genstudio.music.theory import find_key

REPO = Path(__file__).resolve().parents[1]
BUILTIN = REPO / "src" / "genstudio" / "builtin_models"
DATA = REPO / "training" / "music" / "data"


def tonic_ending(notes: Sequence[Note]) -> bool:
    if not notes:
        return False
    key, _ = find_key(notes)
    third = 3 if key.mode == "minor" else 4
    triad = {key.tonic % 12, (key.tonic + third) % 12, (key.tonic + 7) % 12}
    return max(notes, key=lambda n: n.start).pitch % 12 in triad


def quality(melodies: Sequence[Sequence[Note]], bars: int) -> dict[str, float]:
    counts = np.array([in_key_counts(m) for m in melodies]).reshape(-1, 2)
    ranges = [max(n.pitch for n in m) - min(n.pitch for n in m) for m in melodies if m]
    return {
        "in_key": float(counts[:, 0].sum() / max(counts[:, 1].sum(), 1)),
        "range_median": float(np.median(ranges)) if ranges else 0.0,
        "tonic_ending": float(np.mean([tonic_ending(m) for m in melodies])),
        "notes_per_bar": float(np.mean([len(m) for m in melodies]) / bars),
        "empty": float(np.mean([not m for m in melodies])),
    }


def chained(vae: MelodyVAE, n: int, segs: int, temperature: float, gen: torch.Generator) -> list[list[Note]]:
    """The studio's fallback for long pieces (music/service.py sample without a long model)."""
    zs = vae.model.config.z_size
    a, b = torch.randn(n, zs, generator=gen), torch.randn(n, zs, generator=gen)
    z = torch.stack([slerp(a, b, j / (segs - 1)) for j in range(segs)], dim=1)
    parts = vae.melodies(vae.model.decode_tokens(z.reshape(-1, zs), temperature, gen))
    return [join_segments(parts[i * segs : (i + 1) * segs], None) for i in range(n)]


def random_pitches(real: list[list[Note]], rng: np.random.Generator) -> list[list[Note]]:
    out = []
    for m in real:
        lo, hi = min(n.pitch for n in m), max(n.pitch for n in m)
        out.append([Note(int(rng.integers(lo, hi + 1)), n.start, n.end) for n in m])
    return out


@torch.no_grad()
def teacher_forced(long: LongMelodyVAE, tokens: torch.Tensor) -> float:
    model = long.model
    hit = 0
    for i in range(0, len(tokens), 64):
        x = tokens[i : i + 64]
        mu, _ = model.encode(x)
        codes = model.conduct(mu, x.shape[1] // model.config.seg_steps)
        logits = model.bar.decode_teacher_forced(model.split(x), codes.reshape(-1, codes.shape[-1]))
        hit += int((logits.argmax(-1).view(x.shape) == x).sum())
    return hit / tokens.numel()


def long_melodies(long: LongMelodyVAE, vae: MelodyVAE, n: int) -> dict[str, Any]:
    enc = MelodyEncoding()
    d = np.load(DATA / "windows-pd-256.npz")
    valid = torch.from_numpy(d["valid"].astype(np.int64))
    real = [m for m in (enc.decode(row) for row in valid.numpy()) if m]
    rows: dict[str, dict[str, float]] = {}
    plan = f"{2 * long.block}-bar plans"
    for t in (0.5, 1.0):
        gen = torch.Generator().manual_seed(0)
        rows[f"hierarchical ({plan}, as the studio), T = {t}"] = quality(
            long.decode(long.long_codes(n, 8, gen), t, gen), 16
        )
    if long.block != 8:
        gen = torch.Generator().manual_seed(0)
        rows["hierarchical (one 16-bar plan), T = 0.5"] = quality(
            long.decode(long.sample_codes(n, 8, gen), 0.5, gen), 16
        )
    for t in (0.5, 1.0):
        rows[f"chained 2-bar codes, T = {t}"] = quality(chained(vae, n, 8, t, torch.Generator().manual_seed(0)), 16)
    rows["real held-out 16-bar windows"] = quality(real, 16)
    rows["random pitches on real rhythms"] = quality(random_pitches(real, np.random.default_rng(0)), 16)
    real_range = rows["real held-out 16-bar windows"]["range_median"]
    for r in rows.values():
        r["range_ratio"] = r["range_median"] / real_range
    valid8 = torch.from_numpy(np.load(DATA / "windows-pd-128.npz")["valid"].astype(np.int64))
    return {
        "rows": rows,
        "samples": n,
        "valid_windows": len(real),
        "teacher_forced_accuracy": teacher_forced(long, valid),
        "teacher_forced_accuracy_8bar": teacher_forced(long, valid8),
        "valid_windows_8bar": len(valid8),
    }


def continuation(long: LongMelodyVAE, vae: MelodyVAE, limit: int) -> dict[str, Any]:
    enc = MelodyEncoding()
    d = np.load(DATA / "windows-pd-256.npz")
    pieces = [enc.decode(row) for row in d["valid"][:limit]]
    half = 128
    rows: dict[str, dict[str, float]] = {}

    def measure(pairs: list[tuple[list[Note], list[Note]]]) -> dict[str, float]:
        # The same key signature (scale): relative major and minor count as one key.
        keeps = [bool(new) and find_key(new)[0].scale == find_key(given)[0].scale for given, new in pairs]
        dens = [len(new) / max(len(given), 1) for given, new in pairs]
        return {"keeps_key": float(np.mean(keeps)), "density_ratio": float(np.median(dens)), "n": len(pairs)}

    pairs_real, pairs_h, pairs_c = [], [], []
    gen = torch.Generator().manual_seed(0)
    for p in pieces:
        given = [n for n in p if n.start < half]
        real_new = [Note(n.pitch, n.start - half, n.end - half) for n in p if n.start >= half]
        if len(given) < 4:
            continue
        pairs_real.append((given, real_new))
        codes = long.continue_codes(given, 4, 4, 1, gen)  # the studio's call: the last (half block) given
        pairs_h.append((given, long.decode(codes, 0.5, gen)[0]))
        last = vae.encode([[Note(n.pitch, n.start - 96, n.end - 96) for n in given if n.start >= 96]])
        far = torch.randn(1, last.shape[-1], generator=gen)
        z = torch.stack([slerp(last[0], far[0], (j + 1) / 5) for j in range(4)])
        segs = vae.melodies(vae.model.decode_tokens(z, 0.5, gen))
        pairs_c.append((given, join_segments(segs, None)))  # raw: before the studio's key lock
    rows["hierarchical (fitted conductor), T = 0.5"] = measure(pairs_h)
    rows["chained 2-bar codes, T = 0.5"] = measure(pairs_c)
    rows["real second halves"] = measure(pairs_real)
    return {"rows": rows}


def harmony(model: Coconet, limit: int) -> dict[str, Any]:
    d = np.load(DATA / "chorales.npz")
    data, offsets = d["valid"], d["valid_offsets"]
    cfg = model.config
    hits, total = np.zeros(4), np.zeros(4)
    beats = 0.0
    stats = {k: {"parallels": 0, "bad": 0, "notes": 0, "equal": 0, "steps": 0} for k in ("gibbs", "studio", "bach")}
    gen = torch.Generator().manual_seed(0)
    count = min(limit, len(offsets) - 1)
    with torch.no_grad():
        for c in range(count):
            x = torch.from_numpy(data[:, offsets[c] : offsets[c + 1]].astype(np.int64))
            for v in range(4):
                mask = torch.zeros(1, 4, x.shape[1])
                mask[:, v] = 1.0
                pred = model(x[None], mask).argmax(-1)[0, v]
                hits[v] += float((pred == x[v]).sum())
                total[v] += x.shape[1]
            fill = torch.ones_like(x, dtype=torch.bool)
            fill[0] = False
            sampled = gibbs(model, x, fill, iterations=48, temperature=0.75, generator=gen)
            studio = reduce_parallels(model, sampled, fill, rounds=24, generator=gen)  # harmonizer's defaults
            beats += x.shape[1] / 2
            for name, y in (("gibbs", sampled.numpy()), ("studio", studio.numpy()), ("bach", x.numpy())):
                st = stats[name]
                st["parallels"] += parallel_perfects(y, cfg)
                b, n = out_of_range(y, cfg, (1, 2, 3))
                st["bad"] += b
                st["notes"] += n
                st["equal"] += int((y[1:] == x.numpy()[1:]).sum())
                st["steps"] += y[1:].size
    rec = hits / total
    return {
        "chorales": int(count),
        "one_voice_masked_recovery": dict(zip(("soprano", "alto", "tenor", "bass"), rec.round(4).tolist(), strict=True))
        | {"mean": float(rec.mean())},
        "beats": beats,
        "by_source": {
            k: {
                "parallels_per_100_beats": 100 * st["parallels"] / beats,
                "out_of_range_share": st["bad"] / max(st["notes"], 1),
                "steps_equal_to_bach": st["equal"] / max(st["steps"], 1),
            }
            for k, st in stats.items()
        },
    }


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000


def latency(long: LongMelodyVAE, model: Coconet, repeats: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    melody = long.decode(long.sample_codes(1, 8, gen), 0.5, gen)[0]
    given = [n for n in melody if n.start < 128]
    return {
        "sample_1x16_bars_ms": median_ms(lambda: long.decode(long.sample_codes(1, 8, gen), 0.5, gen), repeats),
        "sample_64x16_bars_ms": median_ms(lambda: long.decode(long.sample_codes(64, 8, gen), 0.5, gen), repeats),
        "continue_8_bars_n4_ms": median_ms(
            lambda: long.decode(long.continue_codes(given, 4, 4, 4, gen), 0.5, gen), repeats
        ),
        "harmonize_16_bars_ms": median_ms(
            lambda: harmonize(model, melody, 256, ["alto", "tenor", "bass"], generator=gen), repeats
        ),
    }


def markdown(r: dict[str, Any]) -> str:
    lm = r["long_melodies"]
    out = [
        f"Long melodies (16 bars, {lm['samples']} samples per row). Teacher-forced accuracy (z = mu) on held-out "
        f"tunes: {lm['teacher_forced_accuracy']:.3f} on {lm['valid_windows']} 16-bar windows, "
        f"{lm['teacher_forced_accuracy_8bar']:.3f} on {lm['valid_windows_8bar']} 8-bar windows.",
        "",
        "| melodies | notes in key | pitch range (median) | range / real | ends on a tonic-chord tone "
        "| notes per bar |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, q in lm["rows"].items():
        out.append(
            f"| {name} | {q['in_key']:.1%} | {q['range_median']:.0f} | {q['range_ratio']:.2f} | "
            f"{q['tonic_ending']:.0%} | {q['notes_per_bar']:.1f} |"
        )
    out += [
        "",
        "| continue 8 bars after 8 | keeps the key signature | notes per bar, new / given (median) | pieces |",
        "|---|---:|---:|---:|",
    ]
    for name, q in r["continue"]["rows"].items():
        out.append(f"| {name} | {q['keeps_key']:.0%} | {q['density_ratio']:.2f} | {q['n']} |")
    h = r["harmonize"]
    rec = h["one_voice_masked_recovery"]
    out += [
        "",
        f"Harmonize ({h['chorales']} held-out chorales): one voice masked, steps recovered: "
        f"soprano {rec['soprano']:.1%}, "
        f"alto {rec['alto']:.1%}, tenor {rec['tenor']:.1%}, bass {rec['bass']:.1%} (mean {rec['mean']:.1%}).",
        "",
        "| Bach's soprano, alto/tenor/bass by | parallel 5ths/8ves per 100 beats | notes out of voice range "
        "| steps equal to Bach's |",
        "|---|---:|---:|---:|",
    ]
    names = {
        "gibbs": "Coconet, Gibbs sampling only",
        "studio": "Coconet, Gibbs + voice-leading pass (the studio)",
        "bach": "Bach",
    }
    for k, q in h["by_source"].items():
        out.append(
            f"| {names[k]} | {q['parallels_per_100_beats']:.2f} | {q['out_of_range_share']:.1%} | "
            f"{q['steps_equal_to_bach']:.1%} |"
        )
    out += [
        "",
        "| latency (torch, 1 thread) | ms |",
        "|---|---:|",
    ]
    out += [f"| {k.removesuffix('_ms').replace('_', ' ')} | {v:.1f} |" for k, v in r["latency"].items()]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long", type=Path, default=BUILTIN / "melody-16bar")
    ap.add_argument("--bar", type=Path, default=BUILTIN / "melody-2bar")
    ap.add_argument("--coconet", type=Path, default=BUILTIN / "chorale-4voice")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--continue-pieces", type=int, default=103)
    ap.add_argument("--chorales", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "music2.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    long = LongMelodyVAE.from_pretrained(args.long)
    vae = MelodyVAE.from_pretrained(args.bar)
    coconet = Coconet.from_pretrained(args.coconet)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": 1},
        "models": {"long": str(args.long.name), "bar": str(args.bar.name), "coconet": str(args.coconet.name)},
        "long_melodies": long_melodies(long, vae, args.n),
        "continue": continuation(long, vae, args.continue_pieces),
        "harmonize": harmony(coconet, args.chorales),
        "latency": latency(long, coconet, args.repeats),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
