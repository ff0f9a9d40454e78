"""The face-swap model zoo: ONNX models a user registers once (`genstudio models add FILE --kind faceswap`)
instead of naming each in a setting.

What a file is (its *role*) is read from the model's inputs and outputs, never from its name alone:

- **swapper**: a face image and an identity vector in, a face out (inswapper, HyperSwap, SimSwap exports);
- **recognition**: a face image in, an identity vector out (ArcFace, for the swapper's identity);
- **enhancer**: a face image in, an RGB face of the same size out (GFPGAN, GPEN, CodeFormer);
- **occluder**: a face image in, a one-channel mask out (XSeg);
- **parser**: a face image in, 19 class scores out (BiSeNet on CelebAMask-HQ).

Each role has one *active* model (the first added, or the one chosen with `models default`). A setting that
names a file (GENSTUDIO_FACESWAP_ENHANCER_MODEL and the rest) wins over the zoo; with an active swapper and
recognition model the studio runs the ONNX engine unless GENSTUDIO_FACESWAP_ENGINE is set. Files are
referenced where they are (never copied, never deleted by `models remove`) and only .onnx is accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genstudio.config import Settings
from genstudio.storage.files import atomic_write, sha256_file

ROLES: dict[str, str] = {  # role -> the setting that names a file for it
    "swapper": "faceswap_swap_model",
    "recognition": "faceswap_recognition_model",
    "enhancer": "faceswap_enhancer_model",
    "occluder": "faceswap_occluder_model",
    "parser": "faceswap_parser_model",
}
STYLES = ("inswapper", "hyperswap", "simswap")
ID_PREFIX = "faceswap-"
_SLUG = re.compile(r"[^a-z0-9]+")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_FILE = re.compile(r"^[\w.-]+(/[\w.-]+)*\.onnx$")


def model_id_for(name: str) -> str:
    """The id a face model is registered under: `faceswap-` and a slug of its name."""
    return f"{ID_PREFIX}{_SLUG.sub('-', name.lower()).strip('-')[:48] or 'model'}"


class ZooError(ValueError):
    """A face model cannot be added, found or chosen; the message says what to do."""


@dataclass
class FaceModelEntry:
    id: str
    name: str
    role: str
    source: str  # the file's absolute path (server side only: never in public())
    sha256: str
    size_bytes: int
    style: str | None = None  # swappers: the family (crop template and scaling)
    input_size: int | None = None
    hub: str | None = None  # "repo/name:file" when pulled from the hub (the file is then ours to delete)

    def public(self, active: bool) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": "faceswap", "format": "onnx",
                "family": self.role if self.style is None else f"swapper:{self.style}", "default": active,
                "size_bytes": self.size_bytes, "source": self.hub or "local",
                "description": f"{self.role} ({self.input_size} px input)" if self.input_size else self.role}


def _side(shape: list[Any]) -> int | None:
    sides = [d for d in shape[1:] if isinstance(d, int) and d > 4]
    return sides[0] if sides else None


def _channels(shape: list[Any]) -> int | None:
    """The channel count of a 4-D tensor, NCHW or NHWC (the short axis)."""
    if len(shape) != 4:
        return None
    c1, c3 = shape[1], shape[3]
    if isinstance(c3, int) and c3 <= 32 and not (isinstance(c1, int) and c1 <= 32 and c1 < c3):
        return c3
    return c1 if isinstance(c1, int) else None


def classify(path: Path) -> tuple[str, int | None, int]:
    """(role, input side, number of outputs) read from the model's interface; ZooError for anything else."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ZooError(f"{path.name}: not a model onnxruntime can load ({str(exc).splitlines()[0][:160]})") from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    images = [i for i in inputs if len(i.shape) == 4]
    vectors = [i for i in inputs if len(i.shape) == 2]
    interface = (f"inputs {[(i.name, i.shape) for i in inputs]}, outputs {[(o.name, o.shape) for o in outputs]}")
    if len(images) != 1:
        raise ZooError(f"{path.name}: not a face model (expected one face image input): {interface}")
    side = _side(images[0].shape)
    if vectors:
        return "swapper", side, len(outputs)
    first = outputs[0].shape
    if len(first) == 2:
        return "recognition", side, len(outputs)
    channels = _channels(first)
    role = {3: "enhancer", 1: "occluder", 19: "parser"}.get(channels or 0)
    if role is None:
        raise ZooError(f"{path.name}: its output is neither a face (3 channels), a mask (1) nor 19 face-parser "
                       f"classes: {interface}")
    return role, side, len(outputs)


def guess_style(name: str, side: int | None, n_outputs: int) -> str:
    """A swapper's family: from its name where it says, else from its shape (HyperSwap returns a mask too,
    inswapper takes 128 px faces, SimSwap the rest)."""
    lowered = name.lower()
    for style in STYLES:
        if style in lowered:
            return style
    if n_outputs >= 2:
        return "hyperswap"
    return "inswapper" if side in (None, 128) else "simswap"


class FaceModelZoo:
    """The registered face models of one data dir (faceswap_models.json)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.data_dir / "faceswap_models.json"

    def _raw(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            return {}

    def _save(self, entries: list[FaceModelEntry], active: dict[str, str]) -> None:
        ids = {e.id for e in entries}
        raw = {"models": [asdict(e) for e in entries], "active": {r: i for r, i in active.items() if i in ids}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(raw, indent=2).encode())

    def list(self) -> list[FaceModelEntry]:
        return [FaceModelEntry(**e) for e in self._raw().get("models", [])]

    def active(self) -> dict[str, FaceModelEntry]:
        """role -> its active model (only roles that have one)."""
        by_id = {e.id: e for e in self.list()}
        return {role: by_id[i] for role, i in self._raw().get("active", {}).items() if i in by_id}

    def has(self, model_id: str) -> bool:
        return any(e.id == model_id for e in self.list())

    def add(self, source: str, *, name: str | None = None, style: str | None = None,
            hub: str | None = None) -> FaceModelEntry:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ZooError(f"{source}: no such file")
        if path.suffix.lower() != ".onnx":
            raise ZooError(f"{source}: face models are loaded from .onnx files only (never pickled .pth/.ckpt)")
        role, side, n_outputs = classify(path)
        if style is not None and style not in STYLES:
            raise ZooError(f"--style {style!r}: one of {', '.join(STYLES)}")
        if style is not None and role != "swapper":
            raise ZooError(f"--style is for swap models; {path.name} is a {role}")
        entry = FaceModelEntry(
            id=model_id_for(name or path.stem), name=name or path.stem, role=role, source=str(path.resolve()),
            sha256=sha256_file(path), size_bytes=path.stat().st_size, input_size=side,
            style=(style or guess_style(path.stem, side, n_outputs)) if role == "swapper" else None, hub=hub,
        )
        entries = [e for e in self.list() if e.id != entry.id] + [entry]
        active = dict(self._raw().get("active", {}))
        active.setdefault(role, entry.id)
        if active[role] not in {e.id for e in entries}:
            active[role] = entry.id
        self._save(entries, active)
        return entry

    def set_active(self, model_id: str) -> FaceModelEntry:
        found = [e for e in self.list() if e.id == model_id]
        if not found:
            raise ZooError(f"model: no face model {model_id!r}; see `genstudio models list`")
        active = dict(self._raw().get("active", {}))
        active[found[0].role] = model_id
        self._save(self.list(), active)
        return found[0]

    def remove(self, model_id: str) -> FaceModelEntry:
        """Unregister (the file itself is the user's and stays); the role falls back to another model of it."""
        entries = self.list()
        gone = [e for e in entries if e.id == model_id]
        if not gone:
            raise ZooError(f"model: no face model {model_id!r}")
        rest = [e for e in entries if e.id != model_id]
        if gone[0].hub and not any(e.source == gone[0].source for e in rest):  # downloaded by us: deleted
            Path(gone[0].source).unlink(missing_ok=True)
        active = dict(self._raw().get("active", {}))
        if active.get(gone[0].role) == model_id:
            others = [e.id for e in rest if e.role == gone[0].role]
            active.pop(gone[0].role)
            if others:
                active[gone[0].role] = others[-1]
        self._save(rest, active)
        return gone[0]

    def pull(self, repo_id: str, filename: str, *, revision: str | None = None, name: str | None = None,
             style: str | None = None, progress: Any = None) -> FaceModelEntry:
        """Download one .onnx file of a hub repo (HF_ENDPOINT / HF_TOKEN honoured; FaceFusion's models live in
        such repos) into the model dir and register it; a file that is not a face model is deleted again."""
        from genstudio.storage.hub import HubError, download

        if not _HUB_ID.match(repo_id):
            raise ZooError(f"repo: {repo_id!r} is not a hub id like 'org/name'")
        if not _HUB_FILE.match(filename) or ".." in filename.split("/"):
            raise ZooError(f"--file {filename!r}: the path of an .onnx file in the repo (letters, digits, . _ - /)")
        if not self.settings.allow_hub_downloads:
            raise ZooError("repo: hub downloads are disabled (GENSTUDIO_ALLOW_HUB_DOWNLOADS=false)")

        def has_file(names: list[str]) -> None:
            if filename not in names:
                onnx = sorted(n for n in names if n.endswith(".onnx"))[:8]
                raise ZooError(f"--file: {repo_id} has no {filename!r}" + (f" (it has {', '.join(onnx)})"
                                                                          if onnx else ""))

        target = self.settings.model_dir / "faceswap" / repo_id.replace("/", "--")
        try:
            download(repo_id, target, allow=[filename], revision=revision, progress=progress, check=has_file,
                     look=["*.onnx"])
        except HubError as exc:
            raise ZooError(f"repo: {exc}") from exc
        path = target / filename
        try:
            return self.add(str(path), name=name or Path(filename).stem, style=style, hub=f"{repo_id}:{filename}")
        except ZooError:
            path.unlink(missing_ok=True)
            raise

    def public(self) -> list[dict[str, Any]]:
        active = {e.id for e in self.active().values()}
        return [e.public(e.id in active) for e in self.list()]


def effective_settings(settings: Settings) -> Settings:
    """The settings with the zoo's active models filled in where a setting names none; the ONNX engine when
    the zoo has a swapper and a recognition model and GENSTUDIO_FACESWAP_ENGINE is not set."""
    active = FaceModelZoo(settings).active()
    if not active:
        return settings
    update: dict[str, Any] = {}
    for role, setting in ROLES.items():
        if role in active and getattr(settings, setting) is None:
            update[setting] = Path(active[role].source)
    explicit = settings.model_fields_set
    swapper = active.get("swapper")
    if swapper is not None and "faceswap_swap_model" in update:
        if "faceswap_swap_style" not in explicit and swapper.style:
            update["faceswap_swap_style"] = swapper.style
        has_recognition = "recognition" in active or settings.faceswap_recognition_model is not None
        if "faceswap_engine" not in explicit and has_recognition:
            update["faceswap_engine"] = "onnx"
    return settings.model_copy(update=update) if update else settings


def model_key(settings: Settings) -> tuple[Any, ...]:
    """What a built swapper depends on: a changed zoo means a new swapper."""
    return (settings.faceswap_engine, settings.faceswap_swap_style,
            *(getattr(settings, s) for s in ROLES.values()), settings.faceswap_parser_regions)
