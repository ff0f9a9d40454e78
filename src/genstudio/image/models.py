"""The image model registry: built-in models, local diffusers folders, single files and hub ids."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from genstudio.config import Settings
from genstudio.storage.files import atomic_write

BUILTIN_ROOT = Path(__file__).resolve().parent.parent / "builtin_models"
ModelFormat = Literal["builtin", "folder", "single_file", "hub"]
# What a registered file is: a whole pipeline, or an add-on used with one (API v2 `kind`).
ModelKind = Literal["image", "lora", "embedding", "controlnet", "upscaler"]
ADDON_KINDS: tuple[str, ...] = ("lora", "embedding", "controlnet", "upscaler")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SLUG = re.compile(r"[^a-z0-9]+")


class ModelError(ValueError):
    """A model cannot be found, added or loaded; the message says what to do."""


@dataclass
class ModelEntry:
    id: str
    format: ModelFormat
    source: str
    name: str = ""
    description: str = ""
    config: str | None = None  # for single files: a local diffusers folder (or cached hub id) with configs
    defaults: dict[str, Any] = field(default_factory=dict)
    kind: ModelKind = "image"

    def public(self) -> dict[str, Any]:
        # Never leak server paths to API clients: `source` is the hub id for hub models, else the format.
        return {
            "id": self.id,
            "name": self.name or self.id,
            "format": self.format,
            "description": self.description,
            "defaults": self.defaults,
            "kind": self.kind,
            "family": family_of(self),
            "size_bytes": size_of(self),
            "source": self.source if self.format == "hub" else ("built-in" if self.format == "builtin" else "local"),
        }


# The pipeline class a diffusers folder names -> the family (SD 1.x and 2.x share a class: see the UNet).
_PIPELINE_FAMILIES = {
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl-refiner",
    "StableDiffusion3Pipeline": "sd3",
    "FluxPipeline": "flux",
    "GenStudioTinyPipeline": "builtin",
}


def family_of(entry: ModelEntry) -> str:
    """sd1 | sd2 | sdxl | sdxl-refiner | sd3 | flux | builtin | unknown, from the folder's configs or the
    single file's keys (read from the safetensors header, no weights loaded)."""
    if entry.format == "builtin":
        return "builtin"
    path = Path(entry.source)
    if entry.kind != "image":
        return addon_family(entry.kind, path)
    try:
        if entry.format == "single_file" and path.is_file():
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return family_from_keys(set(f.keys()))
        index = path / "model_index.json"
        if index.is_file():
            cls = json.loads(index.read_text()).get("_class_name", "")
            if cls in _PIPELINE_FAMILIES:
                return _PIPELINE_FAMILIES[cls]
            unet = path / "unet" / "config.json"
            if cls in ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline") and unet.is_file():
                config = json.loads(unet.read_text())  # SD 2.x: OpenCLIP's 1024-d states, linear projections
                sd2 = config.get("cross_attention_dim") == 1024 or config.get("use_linear_projection")
                return "sd2" if sd2 else "sd1"
    except (OSError, ValueError, json.JSONDecodeError):
        return "unknown"
    return "unknown"


def family_from_keys(keys: set[str]) -> str:
    """The family of an A1111 / CivitAI single-file checkpoint from its tensor names."""
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        return "sdxl-refiner"  # the refiner has only the OpenCLIP-G encoder
    if any(".joint_blocks." in k for k in keys):
        return "sd3"
    if any(k.startswith(("double_blocks.", "model.diffusion_model.double_blocks.")) for k in keys):
        return "flux"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"  # OpenCLIP ViT-H text encoder
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd1"  # CLIP ViT-L text encoder
    return "unknown"


# The width of the text states the UNet cross-attends to, per family (SDXL: both encoders concatenated).
_CROSS_DIM_FAMILIES = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


def addon_family(kind: str, path: Path) -> str:
    """The family a LoRA, embedding or ControlNet was made for, from tensor names and shapes (the file's
    header only) or a ControlNet folder's config; "any" for upscalers (they work on pixels)."""
    if kind == "upscaler":
        return "any"
    try:
        if kind == "controlnet" and path.is_dir():
            config = json.loads((path / "config.json").read_text())
            if config.get("addition_embed_type") == "text_time":
                return "sdxl"
            return _CROSS_DIM_FAMILIES.get(int(config.get("cross_attention_dim") or 0), "unknown")
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (OSError, ValueError, TypeError, json.JSONDecodeError):
        return "unknown"
    keys = set(shapes)
    if kind == "embedding":
        if "clip_g" in keys:
            return "sdxl"
        width = next((s[-1] for k, s in shapes.items() if k in ("emb_params", "clip_l") or k.startswith("<")), 0)
        return {768: "sd1", 1024: "sd2"}.get(width, "unknown")
    # LoRA (kohya or diffusers/PEFT names) and single-file ControlNets: the cross-attention key projection's
    # input width is the text states' width.
    for k, s in shapes.items():
        if "attn2" in k and "to_k" in k and len(s) == 2 and any(t in k for t in ("lora_down", "lora_A", "lora.down")):
            return _CROSS_DIM_FAMILIES.get(s[1], "unknown")
        if kind == "controlnet" and "attn2.to_k.weight" in k and len(s) == 2:
            return _CROSS_DIM_FAMILIES.get(s[1], "unknown")
    if any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in keys):
        return "sdxl"
    return "unknown"


def family_matches(addon: str, model: str) -> bool:
    """Whether an add-on of family `addon` fits a model of family `model` (unknown: let the loader judge)."""
    if "unknown" in (addon, model) or addon == "any":
        return True
    return addon == model or {addon, model} <= {"sdxl", "sdxl-refiner"}


def size_of(entry: ModelEntry) -> int:
    """Bytes of the model's weights on disk (0 when not local)."""
    path = Path(entry.source)
    try:
        if path.is_file():
            return path.stat().st_size
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*.safetensors"))
    except OSError:
        pass
    return 0


BUILTIN_DEFAULTS: dict[str, Any] = {
    "width": 256,
    "height": 256,
    "steps": 20,
    "guidance": 3.0,
    "sampler": "ddim",
}


def model_slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:64] or "model"


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.data_dir / "models.json"

    def builtin(self) -> list[ModelEntry]:
        entries = []
        if BUILTIN_ROOT.is_dir():
            for folder in sorted(BUILTIN_ROOT.iterdir()):
                if (folder / "model_index.json").is_file():
                    entries.append(
                        ModelEntry(
                            id=f"builtin:{folder.name}",
                            format="builtin",
                            source=str(folder),
                            name=f"{folder.name} (built-in)",
                            description="Small offline emoji model trained by genstudio (32 px, upscaled).",
                            defaults=dict(BUILTIN_DEFAULTS),
                        )
                    )
        return entries

    def _raw(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _user_entries(self) -> list[ModelEntry]:
        return [ModelEntry(**e) for e in self._raw().get("models", [])]

    def _save(self, entries: list[ModelEntry], default: str | None = None) -> None:
        raw = self._raw()
        raw["models"] = [asdict(e) for e in entries]
        if default is not None:
            raw["default"] = default
        if raw.get("default") and raw["default"] not in {e.id for e in self.builtin() + entries}:
            raw.pop("default")  # the default was removed: back to the setting's
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(raw, indent=2).encode())

    def default_id(self) -> str:
        """The model used when a request names none: chosen with `models default`, else the setting."""
        return self._raw().get("default") or self.settings.default_image_model

    def set_default(self, model_id: str) -> ModelEntry:
        entry = self.get(model_id)
        self._save(self._user_entries(), default=entry.id)
        return entry

    def list(self, kind: str | None = "image") -> list[ModelEntry]:
        """Registered models of one kind (None: every kind)."""
        return [e for e in self.builtin() + self._user_entries() if kind in (None, e.kind)]

    def get(self, model_id: str | None, kind: str = "image") -> ModelEntry:
        model_id = model_id or self.default_id()
        for e in self.list(None):
            if e.id == model_id:
                if e.kind != kind:
                    raise ModelError(f"model: {model_id!r} is a {e.kind}, not a{'n' if kind[0] in 'aeiu' else ''} "
                                     f"{kind} model")
                return e
        what = "model" if kind == "image" else f"{kind}"
        listing = "GET /api/models" + ("" if kind == "image" else f"?kind={kind}")
        raise ModelError(f"model: unknown {what} {model_id!r}; see `genstudio models list` or {listing}")

    def add(
        self, source: str, *, name: str | None = None, config: str | None = None, kind: str = "image"
    ) -> ModelEntry:
        """Register a local diffusers folder, a single .safetensors checkpoint, or a cached hub id; or an
        add-on of `kind` lora / embedding / upscaler (a .safetensors file) or controlnet (a file or a folder)."""
        if kind != "image":
            return self._add_addon(source, name=name, kind=kind)
        path = Path(source).expanduser()
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ModelError(f"{source}: not a diffusers folder (no model_index.json)")
            fmt: ModelFormat = "folder"
            source = str(path.resolve())
        elif path.is_file():
            if path.suffix != ".safetensors":
                raise ModelError(f"{source}: only .safetensors checkpoints are loaded (never pickled .ckpt/.bin)")
            fmt = "single_file"
            source = str(path.resolve())
        elif _HUB_ID.match(source):
            fmt = "hub"
        else:
            raise ModelError(f"{source}: no such folder or file, and not a hub id like 'org/name'")
        if config:
            from genstudio.image.single_file import FAMILIES

            known = Path(config).expanduser().is_dir() or config in FAMILIES or _HUB_ID.match(config)
            if not known:
                raise ModelError(
                    f"--config {config!r}: not a folder, not a hub id, and not one of the shipped family "
                    f"configs ({', '.join(FAMILIES)})"
                )
        entry = ModelEntry(
            id=model_slug(name or (path.stem if fmt != "hub" else source.replace("/", "-"))),
            format=fmt,
            source=source,
            name=name or source.rsplit("/", 1)[-1],
            config=str(Path(config).expanduser().resolve()) if config and Path(config).exists() else config,
        )
        entries = [e for e in self._user_entries() if e.id != entry.id]
        entries.append(entry)
        self._save(entries)
        return entry

    def _add_addon(self, source: str, *, name: str | None, kind: str) -> ModelEntry:
        if kind not in ADDON_KINDS:
            raise ModelError(f"--kind {kind!r}: one of image, {', '.join(ADDON_KINDS)}")
        path = Path(source).expanduser()
        defaults: dict[str, Any] = {}
        if kind == "controlnet" and path.is_dir():
            if not (path / "config.json").is_file() or not list(path.glob("*.safetensors")):
                raise ModelError(f"{source}: not a diffusers ControlNet folder (config.json and .safetensors weights)")
            fmt: ModelFormat = "folder"
        elif path.is_file():
            if path.suffix != ".safetensors":
                raise ModelError(f"{source}: only .safetensors files are loaded (never pickled .ckpt/.pt/.pth/.bin)")
            fmt = "single_file"
        else:
            raise ModelError(f"{source}: no such file" + (" or folder" if kind == "controlnet" else ""))
        if kind == "upscaler":
            from genstudio.image.upscale import describe

            defaults = describe(path)  # refuses a file spandrel does not know, before it is registered
        elif fmt == "single_file":
            _check_addon_keys(path, kind)
        entry = ModelEntry(id=model_slug(name or path.stem), format=fmt, source=str(path.resolve()),
                           name=name or path.stem, kind=kind, defaults=defaults)  # type: ignore[arg-type]
        if entry.id.startswith("builtin"):
            raise ModelError(f"--name {entry.id!r}: reserved for built-in models")
        entries = [e for e in self._user_entries() if e.id != entry.id]
        entries.append(entry)
        self._save(entries)
        return entry

    def remove(self, model_id: str) -> ModelEntry:
        """Unregister a user-added model; files the studio downloaded (`pull`) are deleted too, a user's
        own folder or file never is. Built-ins cannot be removed."""
        if model_id.startswith("builtin:"):
            raise ModelError(f"model: {model_id!r} is built in and cannot be removed")
        entries = self._user_entries()
        gone = [e for e in entries if e.id == model_id]
        if not gone:
            raise ModelError(f"model: no user-added model {model_id!r}")
        self._save([e for e in entries if e.id != model_id])
        downloads = (self.settings.model_dir / "hub").resolve()
        source = Path(gone[0].source)
        if source.is_dir() and source.resolve().is_relative_to(downloads) and source.resolve() != downloads:
            shutil.rmtree(source, ignore_errors=True)
        return gone[0]

    def pull(
        self,
        hub_id: str,
        *,
        revision: str | None = None,
        name: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ModelEntry:
        """Download a diffusers repo's safetensors weights and config files (never pickles), then register
        the local copy. `progress(bytes_done, bytes_total)` is called as bytes arrive; a raise from it
        (a cancel) stops the download, and what was fetched is removed. Honours HF_ENDPOINT / HF_TOKEN."""
        if not _HUB_ID.match(hub_id):
            raise ModelError(f"repo: {hub_id!r} is not a hub id like 'stabilityai/sd-turbo'")
        if not self.settings.allow_hub_downloads:
            raise ModelError("repo: hub downloads are disabled (GENSTUDIO_ALLOW_HUB_DOWNLOADS=false)")
        from genstudio.storage.hub import HubError, download

        def diffusers_only(names: list[str]) -> None:
            if "model_index.json" not in names or not any(n.endswith(".safetensors") for n in names):
                raise ModelError(
                    f"repo: {hub_id} is not a diffusers pipeline with safetensors weights (no model_index.json "
                    "or no .safetensors files; pickled weights are never loaded)"
                )

        target = self.settings.model_dir / "hub" / hub_id.replace("/", "--")
        try:
            download(hub_id, target, allow=PULL_PATTERNS, ignore=PULL_IGNORED, revision=revision, progress=progress,
                     check=diffusers_only)
        except HubError as exc:
            raise ModelError(f"repo: {exc}") from exc
        return self.add(str(target), name=name or hub_id.replace("/", "-"))


def _check_addon_keys(path: Path, kind: str) -> None:
    """A clear refusal for a file of the wrong kind (a checkpoint registered as a LoRA, and so on)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for garbage
        raise ModelError(f"{path.name}: not a readable .safetensors file ({type(exc).__name__})") from exc
    ok = {
        "lora": lambda k: "lora" in k.lower() or k.endswith(".alpha"),
        "embedding": lambda k: k in ("emb_params", "clip_l", "clip_g") or k.startswith("<") or k == "string_to_param",
        "controlnet": lambda k: k.startswith(("control_model.", "controlnet_", "input_hint_block", "zero_convs")),
    }[kind]
    if not any(ok(k) for k in keys):
        raise ModelError(f"{path.name}: does not look like a {kind} (none of its {len(keys)} tensor names fit)")


# What a pull fetches: weights as safetensors and the small text files a pipeline needs; no pickles, no
# half-precision or EMA duplicates (the full-precision file is converted on load as the device needs).
# Weights only inside component folders (unet/, vae/, ...): many repos also hold the whole model as one
# file at the top (e.g. sd_turbo.safetensors), which would double the download.
PULL_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors"]
PULL_IGNORED = ["*.fp16.safetensors", "*ema*", "*.ckpt", "*.bin", "*.pt", "*.pth", "*.onnx", "*.msgpack",
                "*.h5"]


