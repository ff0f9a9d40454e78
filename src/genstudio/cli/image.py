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
    i.add_argument("--model", help="a model id (genstudio models list) or a local folder/.safetensors")
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--data-dir")
    i.add_argument("-q", "--quiet", action="store_true")
    i.set_defaults(func=cmd_image)
