"""Generation parameters inside PNG text chunks: A1111's `parameters` format, plus our exact JSON."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from PIL import Image

from genstudio.image.models import model_slug
from genstudio.image.params import A1111_SAMPLER_NAMES, ImageParams

GENSTUDIO_CHUNK = "genstudio"
_SAMPLER_FROM_A1111 = {v.lower(): k for k, v in A1111_SAMPLER_NAMES.items()}
# "Key: value" pairs separated by ", "; values may be quoted (A1111 quotes values holding commas).
_PAIR = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_text(
    p: ImageParams, *, final_prompt: str, final_negative: str, seed: int, model_name: str,
    hashes: dict[str, str] | None = None,
) -> str:
    hashes = hashes or {}
    pairs = [
        ("Steps", str(p.steps)),
        ("Sampler", A1111_SAMPLER_NAMES[p.sampler]),
        ("CFG scale", f"{p.guidance:g}"),
        ("Seed", str(seed)),
        ("Size", f"{p.width}x{p.height}"),
        ("Model", model_name),
    ]
    if p.style:
        pairs.append(("Style", p.style))
    if p.tile:
        pairs.append(("Tiling", "True"))
    if p.init_image is not None and p.strength is not None:  # img2img, as A1111 writes it
        pairs.append(("Denoising strength", f"{p.strength:g}"))
    if p.mask is not None and p.mask_blur is not None:
        pairs.append(("Mask blur", str(p.mask_blur)))
    if p.inpaint_area == "masked":
        pairs.append(("Inpaint area", "Only masked"))
    if p.outpaint is not None:
        o = p.outpaint
        pairs.append(("Outpaint", f"{o.left},{o.right},{o.top},{o.bottom}"))
    if p.hires is not None:
        if p.init_image is None:  # A1111 writes the refine pass's strength here for a hires fix
            pairs.append(("Denoising strength", f"{p.hires.strength:g}"))
        pairs.append(("Hires upscale", f"{p.hires.scale:g}"))
        pairs.append(("Hires steps", str(p.hires.steps or p.steps)))
        pairs.append(("Hires upscaler", _HIRES_NAMES.get(p.hires.upscaler, p.hires.upscaler)))
    if p.loras:
        pairs.append(("Lora hashes", ", ".join(f"{lo.id}: {hashes.get(lo.id, '')}" for lo in p.loras)))
    for i, u in enumerate(p.controlnets):
        model = f"{u.model} [{hashes[u.model]}]" if u.model in hashes else u.model
        pairs.append((f"ControlNet {i}", f"Module: {u.preprocessor}, Model: {model}, Weight: {u.weight:g}, "
                                         f"Guidance Start: {u.start:g}, Guidance End: {u.end:g}"))
    # LoRAs given in the `loras` field are written as A1111 tags, so A1111 (and our reader) get them back.
    tags = [f"<lora:{lo.id}:{lo.weight:g}>" for lo in p.loras if f"<lora:{lo.id}" not in final_prompt]
    if tags:
        final_prompt = f"{final_prompt} {' '.join(tags)}"
    lines = [final_prompt]
    if final_negative:
        lines.append(f"Negative prompt: {final_negative}")
    lines.append(", ".join(f"{k}: {json.dumps(v) if ',' in v else v}" for k, v in pairs))
    return "\n".join(lines)


def parse_a1111(text: str) -> dict[str, Any]:
    """Parse A1111's `parameters` text into request fields (what 'reuse these settings' needs)."""
    lines = text.strip().split("\n")
    settings_line = lines[-1] if len(lines) > 1 and _PAIR.match(lines[-1]) and "Steps:" in lines[-1] else ""
    body = lines[:-1] if settings_line else lines
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in body:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line.removeprefix("Negative prompt:").strip()
        target.append(line)
    out: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines).strip(),
        "negative_prompt": "\n".join(negative_lines).strip(),
    }
    kv: dict[str, str] = {}
    for m in _PAIR.finditer(settings_line):
        key, value = m.group(1).strip(), m.group(2).strip()
        if value.startswith('"'):
            value = json.loads(value)
        if key:
            kv[key] = value
    def number(key: str, kind: type) -> Any:
        try:
            return kind(kv[key])
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"file: the PNG's parameters say {key}: {kv[key]!r}, which is not {what}") from None

    if "Steps" in kv:
        out["steps"] = number("Steps", int)
    sampler = kv.get("Sampler", "").lower()
    # A1111 writes the schedule into the sampler's name ("DPM++ 2M Karras"); the sampler is what we restore.
    for suffix in (" karras", " exponential", " sgm uniform", " polyexponential"):
        sampler = sampler.removesuffix(suffix)
    if sampler in _SAMPLER_FROM_A1111:
        out["sampler"] = _SAMPLER_FROM_A1111[sampler]
    if "CFG scale" in kv:
        out["guidance"] = number("CFG scale", float)
    if "Seed" in kv:
        out["seed"] = number("Seed", int)
    if "Size" in kv and "x" in kv["Size"]:
        w, h = kv["Size"].split("x", 1)
        kv["Size width"], kv["Size height"] = w, h
        out["width"], out["height"] = number("Size width", int), number("Size height", int)
    if "Model" in kv:
        out["model"] = kv["Model"]
    if "Style" in kv:
        out["style"] = kv["Style"]
    if kv.get("Tiling", "").lower() == "true":
        out["tile"] = True
    if "Denoising strength" in kv:  # the init image itself is not in the text: the caller picks one
        out["strength"] = number("Denoising strength", float)
    if "Mask blur" in kv:
        out["mask_blur"] = number("Mask blur", int)
    if kv.get("Inpaint area", "").lower() == "only masked":
        out["inpaint_area"] = "masked"
    if "Outpaint" in kv:
        sides = kv["Outpaint"].split(",")
        if len(sides) == 4 and all(x.strip().isdigit() for x in sides):
            out["outpaint"] = dict(zip(("left", "right", "top", "bottom"), (int(x) for x in sides), strict=True))
    if "Hires upscale" in kv:
        hires: dict[str, Any] = {"scale": number("Hires upscale", float)}
        if "Hires steps" in kv:
            hires["steps"] = number("Hires steps", int) or None
        if "Denoising strength" in kv and "strength" in out:
            hires["strength"] = out.pop("strength")  # text to image + hires: the strength is the refine's
        upscaler = kv.get("Hires upscaler", "Latent")
        hires["upscaler"] = _HIRES_FROM_A1111.get(upscaler.lower(), model_slug(upscaler))
        out["hires"] = hires
    loras = [{"id": model_slug(m.group(1)), "weight": float(m.group(2) or 1)} for m in LORA_TAG.finditer(out["prompt"])]
    if loras:
        out["loras"] = loras
    units = []
    for i in range(8):
        text = kv.get(f"ControlNet {i}")
        if text is None:
            continue
        unit = dict(_PAIR.findall(text))
        unit = {k.strip(): v.strip() for k, v in unit.items()}
        model = re.sub(r"\s*\[[0-9a-f]+\]$", "", unit.get("Model", ""))
        units.append({"model": model_slug(model), "preprocessor": unit.get("Module", "none"),
                      "weight": float(unit.get("Weight", 1)), "start": float(unit.get("Guidance Start", 0)),
                      "end": float(unit.get("Guidance End", 1))})
    if units:
        out["controlnets"] = units  # the control images are not in the text: the caller picks them
    return out


# A1111's names for the hires upscalers we share with it.
_HIRES_NAMES = {"latent": "Latent", "lanczos": "Lanczos"}
_HIRES_FROM_A1111 = {v.lower(): k for k, v in _HIRES_NAMES.items()}
# A1111's LoRA tag in a prompt: <lora:ID> or <lora:ID:WEIGHT>.
LORA_TAG = re.compile(r"<lora:([^:>]+)(?::(-?[0-9]*\.?[0-9]+))?>")


def read_png_params(data: bytes) -> dict[str, Any]:
    """Settings stored in a PNG: our exact JSON when present, else whatever A1111 text is there."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise ValueError(f"file: expected a PNG image, got {im.format or 'unknown format'}")
            chunks = dict(getattr(im, "text", {}) or {})
    except ValueError:
        raise
    except Exception as exc:  # PIL raises many types for garbage
        raise ValueError(f"file: not a readable PNG image ({type(exc).__name__})") from exc
    if GENSTUDIO_CHUNK in chunks:
        try:
            request = json.loads(chunks[GENSTUDIO_CHUNK])
            return {"source": "genstudio", "params": request, "parameters": chunks.get("parameters")}
        except json.JSONDecodeError:
            pass
    if "parameters" in chunks:
        return {"source": "a1111", "params": parse_a1111(chunks["parameters"]), "parameters": chunks["parameters"]}
    raise ValueError("file: this PNG carries no generation parameters")
