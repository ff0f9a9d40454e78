"""Add-ons used with a loaded pipeline: LoRAs, textual-inversion embeddings and ControlNets.

LoRAs load through diffusers' `load_lora_weights` (PEFT backend), which reads both the kohya layout that
CivitAI serves and the diffusers / PEFT layout; each stays loaded as a named adapter on the pipeline and a
job switches the set and weights it wants (`set_adapters`), so a LoRA is read from disk once. A weight of 0
leaves the adapter out entirely: exactly the model without it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from genstudio.image.models import ModelEntry, ModelError


@dataclass
class Addons:
    """What one job uses besides the model: LoRAs with weights, embeddings, ControlNet units ready to run
    (model, control image, unit settings), and the hires fix's upscaler model (spandrel) if any."""

    loras: list[tuple[ModelEntry, float]] = field(default_factory=list)
    embeddings: list[ModelEntry] = field(default_factory=list)
    controls: list[tuple[Any, Any, Any]] = field(default_factory=list)
    upscaler: Any = None


@lru_cache(maxsize=256)
def _hash(path: str, mtime_ns: int, size: int) -> str:
    # A1111 / CivitAI "AutoV3": sha256 of a safetensors file's tensor data, after its JSON header.
    h = hashlib.sha256()
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        f.seek(8 + header_len)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def short_hash(entry: ModelEntry) -> str:
    """The short hash A1111 writes in `Lora hashes` (and CivitAI looks files up by); folders: their config's."""
    path = Path(entry.source)
    if path.is_dir():
        return hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:12]
    st = path.stat()
    return _hash(str(path), st.st_mtime_ns, st.st_size)


def _adapter_name(entry: ModelEntry) -> str:
    return "gs_" + entry.id.replace("-", "_").replace(":", "_")


def apply_loras(pipe: Any, loras: list[tuple[ModelEntry, float]]) -> None:
    """Make exactly `loras` (non-zero weights) active on `pipe` and its from_pipe siblings (they share the
    UNet and text encoders). Loads each LoRA the first time it is used."""
    active = [(e, w) for e, w in loras if w != 0.0]
    loaded: dict[str, str] = getattr(pipe, "_genstudio_loras", {})
    if not active:
        if loaded:
            pipe.disable_lora()
        return
    for entry, _w in active:
        name = _adapter_name(entry)
        if loaded.get(name) == entry.source:
            continue
        if name in loaded:  # same id, another file (re-registered): drop the old weights first
            pipe.delete_adapters(name)
        try:
            pipe.load_lora_weights(entry.source, adapter_name=name)
        except Exception as exc:  # noqa: BLE001 - diffusers' many loader errors, in one line
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"loras: {entry.id} could not be applied to this model ({first})") from exc
        loaded[name] = entry.source
    pipe._genstudio_loras = loaded
    pipe.enable_lora()
    pipe.set_adapters([_adapter_name(e) for e, _ in active], [w for _, w in active])


def load_embeddings(pipe: Any, entries: list[ModelEntry]) -> None:
    """Textual-inversion embeddings (A1111 `.safetensors`), each as the token of its model id, loaded once."""
    from safetensors.torch import load_file

    done: set[str] = getattr(pipe, "_genstudio_embeddings", set())
    for entry in entries:
        if entry.id in done:
            continue
        state = load_file(entry.source)
        try:
            if "clip_g" in state:  # SDXL: one vector set per encoder
                if getattr(pipe, "text_encoder_2", None) is None:
                    raise ModelError(f"prompt: embedding {entry.id} is for SDXL")
                pipe.load_textual_inversion(state["clip_l"], token=entry.id, text_encoder=pipe.text_encoder,
                                            tokenizer=pipe.tokenizer)
                pipe.load_textual_inversion(state["clip_g"], token=entry.id, text_encoder=pipe.text_encoder_2,
                                            tokenizer=pipe.tokenizer_2)
            else:
                vectors = state.get("emb_params")
                if vectors is None:
                    vectors = next(iter(state.values()))
                pipe.load_textual_inversion(vectors, token=entry.id)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"prompt: embedding {entry.id} does not fit this model ({first})") from exc
        done.add(entry.id)
    pipe._genstudio_embeddings = done


def controlnet(pipe: Any, entry: ModelEntry) -> Any:
    """A ControlNet on the pipeline's device and precision, cached on the pipeline."""
    from diffusers import ControlNetModel

    cache: dict[str, Any] = getattr(pipe, "_genstudio_controlnets", {})
    if entry.id in cache:
        return cache[entry.id]
    dtype = pipe.unet.dtype
    try:
        if entry.format == "folder":
            model = ControlNetModel.from_pretrained(entry.source, torch_dtype=dtype, use_safetensors=True)
        else:
            model = ControlNetModel.from_single_file(entry.source, config=str(_controlnet_config(pipe)),
                                                     torch_dtype=dtype, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"controlnets: {entry.id} could not load ({type(exc).__name__}: {first})") from exc
    if model.config.cross_attention_dim != pipe.unet.config.cross_attention_dim:
        raise ModelError(f"controlnets: {entry.id} is for another model family (text width "
                         f"{model.config.cross_attention_dim}, this model's {pipe.unet.config.cross_attention_dim})")
    model.to(pipe.unet.device)
    cache[entry.id] = model
    pipe._genstudio_controlnets = cache
    return model


def _controlnet_config(pipe: Any) -> Path:
    """A single-file ControlNet's configuration, offline: the pipeline's own UNet's, which a ControlNet copies
    (its encoder half), written once beside the family configs."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / "genstudio-configs" / f"controlnet-{_config_key(pipe.unet.config)}"
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        config = {k: v for k, v in dict(pipe.unet.config).items() if not k.startswith("_")}
        config["_class_name"] = "ControlNetModel"
        (folder / "config.json").write_text(json.dumps(config, default=list))
    return folder


def _config_key(config: Any) -> str:
    return hashlib.sha256(json.dumps(dict(config), sort_keys=True, default=str).encode()).hexdigest()[:12]
