"""`genstudio image`: text to image in this process, through the image studio's one road."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from genstudio.cli.common import progress_bar, settings_from, studio_context


def cmd_image(args: argparse.Namespace) -> int:
    from genstudio.image.params import ImageRequest
    from genstudio.image.studio import ImageStudio
    from genstudio.storage.files import atomic_write

    settings = settings_from(args)
    settings.ensure_dirs()
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise ValueError("-o: the output must be a .png file")
    ctx = studio_context(settings)
    studio = ImageStudio(ctx)
    model = args.model
    if model and Path(model).exists():
        model = studio.registry.add(model).id
    req = ImageRequest(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt or "",
        style=args.style,
        model=model,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        width=args.width,
        height=args.height,
        batch=args.batch,
        sampler=args.sampler,
        tile=args.tile,
        init_image=f"file:{Path(args.init_image).expanduser().resolve()}" if args.init_image else None,
        strength=args.strength,
        mask=f"file:{Path(args.mask).expanduser().resolve()}" if args.mask else None,
        mask_blur=args.mask_blur,
        inpaint_area=args.inpaint_area,
        outpaint=_outpaint(args.outpaint),
        hires=_hires(args),
        loras=[_lora(text) for text in args.lora],
        controlnets=[_controlnet(text) for text in args.controlnet],
    )
    params = studio.resolve(req)
    out.parent.mkdir(parents=True, exist_ok=True)
    with progress_bar(args, "image") as job:
        outputs = ctx.stage(studio.run(params, job))
    paths = []
    for i, o in enumerate(outputs):
        dest = out if len(outputs) == 1 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
        atomic_write(dest, o.data, mode="user")
        paths.append(str(dest))
    print(json.dumps({"files": paths, "seed": params.seed, "params": params.model_dump()}, indent=2))
    return 0


def _outpaint(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--outpaint: four whole numbers LEFT,RIGHT,TOP,BOTTOM (got {text!r})")
    return dict(zip(("left", "right", "top", "bottom"), (int(p) for p in parts), strict=True))


def _hires(args: argparse.Namespace) -> dict[str, Any] | None:
    extra = {"strength": args.hires_strength, "steps": args.hires_steps, "upscaler": args.hires_upscaler}
    if args.hires_scale is None:
        if any(v is not None for v in extra.values()):
            raise ValueError("--hires-strength/--hires-steps/--hires-upscaler: give --hires-scale too")
        return None
    return {"scale": args.hires_scale, **{k: v for k, v in extra.items() if v is not None}}


def _weight(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a number") from None


def _lora(text: str) -> dict[str, Any]:
    model, _, weight = text.partition(":")
    return {"id": model, "weight": _weight(weight, "--lora") if weight else 1.0}


def _controlnet(text: str) -> dict[str, Any]:
    """MODEL:IMAGE[:PREPROCESSOR[:WEIGHT]]; the image is a file (a path may itself hold ':' on Windows: the
    preprocessor and weight are read from the right)."""
    model, _, rest = text.partition(":")
    parts = rest.split(":")
    unit: dict[str, Any] = {"model": model}
    if len(parts) >= 2 and parts[-1].replace(".", "", 1).isdigit() and parts[-2] in PREPROCESSORS:
        unit["weight"], unit["preprocessor"], parts = float(parts[-1]), parts[-2], parts[:-2]
    elif parts and parts[-1] in PREPROCESSORS:
        unit["preprocessor"], parts = parts[-1], parts[:-1]
    image = ":".join(parts)
    if not model or not image:
        raise ValueError(f"--controlnet: MODEL:IMAGE[:PREPROCESSOR[:WEIGHT]] (got {text!r})")
    unit["image"] = f"file:{Path(image).expanduser().resolve()}"
    return unit


PREPROCESSORS = ("none", "canny", "lineart", "scribble")


def register(sub: Any) -> None:
    i = sub.add_parser("image", help="text to image")
    i.add_argument("prompt")
    i.add_argument("--style")
    i.add_argument("--negative-prompt", default="")
    i.add_argument("--seed", type=int)
    i.add_argument("--steps", type=int)
    i.add_argument("--guidance", type=float)
    i.add_argument("--width", type=int)
    i.add_argument("--height", type=int)
    i.add_argument("--batch", type=int, default=1)
    i.add_argument("--sampler", choices=["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"])
    i.add_argument("--tile", action="store_true")
    i.add_argument("--init-image", help="img2img: start from this image file (PNG, JPEG or WebP)")
    i.add_argument("--strength", type=float, help="img2img: how much to change it, 0..1 (default 0.75)")
    i.add_argument("--mask", help="inpaint (with --init-image): white repaints, black keeps")
    i.add_argument("--mask-blur", type=int, help="inpaint: feathering of the mask edge, px (default 4)")
    i.add_argument("--inpaint-area", choices=["whole", "masked"],
                   help="inpaint: 'masked' repaints a crop around the mask at full resolution")
    i.add_argument("--outpaint", metavar="L,R,T,B", help="extend --init-image by these pixels (multiples of 8)")
    i.add_argument("--hires-scale", type=float, help="hires fix: upscale the first pass by this much (1..4)")
    i.add_argument("--hires-strength", type=float, help="hires fix: refine strength (default 0.5)")
    i.add_argument("--hires-steps", type=int, help="hires fix: refine steps (default: --steps)")
    i.add_argument("--hires-upscaler", help="hires fix: latent (default), lanczos or an upscaler model id")
    i.add_argument("--lora", action="append", default=[], metavar="ID:WEIGHT",
                   help="a LoRA (genstudio models add FILE --kind lora) and its weight; repeatable")
    i.add_argument("--controlnet", action="append", default=[], metavar="MODEL:IMAGE[:PREPROCESSOR[:WEIGHT]]",
                   help="a ControlNet unit: model id, control image file, none|canny|lineart|scribble, weight")
    i.add_argument("--model", help="a model id (genstudio models list) or a local folder/.safetensors")
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--data-dir")
    i.add_argument("-q", "--quiet", action="store_true")
    i.set_defaults(func=cmd_image)
