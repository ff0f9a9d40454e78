"""The image model registry: built-in models, local diffusers folders, single files and hub ids."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from genstudio.config import Settings
from genstudio.storage.files import atomic_write

BUILTIN_ROOT = Path(__file__).resolve().parent.parent / "builtin_models"
ModelFormat = Literal["builtin", "folder", "single_file", "hub"]
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

    def public(self) -> dict[str, Any]:
        # Never leak server paths to API clients.
        return {
            "id": self.id,
            "name": self.name or self.id,
            "format": self.format,
            "description": self.description,
            "defaults": self.defaults,
            "kind": "image",
        }


BUILTIN_DEFAULTS: dict[str, Any] = {
    "width": 256,
    "height": 256,
    "steps": 20,
    "guidance": 3.0,
    "sampler": "ddim",
}


def _slug(text: str) -> str:
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

    def _user_entries(self) -> list[ModelEntry]:
        if not self.path.is_file():
            return []
        raw = json.loads(self.path.read_text())
        return [ModelEntry(**e) for e in raw.get("models", [])]

    def _save(self, entries: list[ModelEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"models": [asdict(e) for e in entries]}, indent=2).encode())

    def list(self) -> list[ModelEntry]:
        return self.builtin() + self._user_entries()

    def get(self, model_id: str | None) -> ModelEntry:
        model_id = model_id or self.settings.default_image_model
        for e in self.list():
            if e.id == model_id:
                return e
        raise ModelError(f"model: unknown model {model_id!r}; see `genstudio models list` or GET /api/models")

    def add(self, source: str, *, name: str | None = None, config: str | None = None) -> ModelEntry:
        """Register a local diffusers folder, a single .safetensors checkpoint, or a cached hub id."""
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
        entry = ModelEntry(
            id=_slug(name or (path.stem if fmt != "hub" else source.replace("/", "-"))),
            format=fmt,
            source=source,
            name=name or source.rsplit("/", 1)[-1],
            config=str(Path(config).expanduser().resolve()) if config and Path(config).exists() else config,
        )
        entries = [e for e in self._user_entries() if e.id != entry.id]
        entries.append(entry)
        self._save(entries)
        return entry

    def remove(self, model_id: str) -> None:
        entries = self._user_entries()
        kept = [e for e in entries if e.id != model_id]
        if len(kept) == len(entries):
            raise ModelError(f"model: no user-added model {model_id!r}")
        self._save(kept)

    def pull(self, hub_id: str) -> ModelEntry:
        """Download a diffusers repo's safetensors weights and configs, then register the local copy."""
        if not _HUB_ID.match(hub_id):
            raise ModelError(f"{hub_id!r} is not a hub id like 'stabilityai/sd-turbo'")
        if not self.settings.allow_hub_downloads:
            raise ModelError("hub downloads are disabled (GENSTUDIO_ALLOW_HUB_DOWNLOADS=false)")
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:  # pragma: no cover - a dependency of diffusers
            raise ModelError("huggingface_hub is not installed") from exc
        target = self.settings.model_dir / "hub" / hub_id.replace("/", "--")
        try:
            snapshot_download(
                hub_id,
                local_dir=target,
                allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors"],
                ignore_patterns=["*.fp16.safetensors", "*ema*", "*.ckpt", "*.bin"],
            )
        except Exception as exc:  # noqa: BLE001 - network errors have many types
            raise ModelError(
                f"could not download {hub_id}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                " (no internet? download it elsewhere and use `genstudio models add FOLDER`)"
            ) from exc
        return self.add(str(target), name=hub_id.replace("/", "-"))
