"""The models every studio offers, from the studio registry; the image model manager (pull, remove,
default)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from genstudio.api.deps import State
from genstudio.api.schemas import Deleted, ModelInfo, PullAccepted
from genstudio.errors import LimitError
from genstudio.image.models import ADDON_KINDS, ModelError
from genstudio.image.params import PullRequest

router = APIRouter(prefix="/api", tags=["models"])
ModelId = Annotated[str, Path(pattern=r"^[a-z0-9:-]{1,80}$", description="a model id from GET /api/models")]


@router.get("/models")
def models(
    state: State,
    kind: Annotated[str | None, Query(pattern="^[a-z]+$", max_length=32,
                                      description="image|lora|embedding|controlnet|upscaler|music|faceswap")] = None,
) -> list[ModelInfo]:
    """Registered models; `kind` filters on what a model is (an image pipeline, or an add-on used with one:
    lora, embedding, controlnet, upscaler), or names a studio."""
    kinds = set(state.studios.names()) | set(ADDON_KINDS)
    if kind is not None and kind not in kinds:
        raise LimitError("kind", f"unknown kind {kind!r}; one of {', '.join(sorted(kinds))}")
    return [ModelInfo(**m) for m in state.studios.models(None) if kind in (None, m["kind"])]


@router.post("/models/pull", status_code=202)
def pull_model(req: PullRequest, state: State) -> PullAccepted:
    """Download a diffusers repo from the hub (HF_ENDPOINT honoured) as a job: progress is the fraction of
    bytes fetched, over the job's SSE stream; cancel stops it; only safetensors and config files. With kind
    "faceswap": one .onnx file of the repo (`file`), registered as a face-swap model."""
    if req.kind == "faceswap":
        if "faceswap" not in state.studios.names():
            raise LimitError("kind", "the face-swap studio is not enabled on this server")
        face = state.studios["faceswap"].resolve_pull(req.repo, req.file, req.revision, req.name)
        job = state.submit("faceswap", face)
        return PullAccepted(job_id=job.id, model_id=face.model_id, params=face.model_dump())
    params = state.studios["image"].resolve_pull(req)
    job = state.submit("image", params)
    return PullAccepted(job_id=job.id, model_id=params.model_id, params=params.model_dump())


def _registry(state: Any) -> Any:
    return state.studios["image"].registry


def _face_zoo(state: Any, model_id: str) -> Any:
    """The face-swap model zoo when `model_id` is one of its models (`models add FILE --kind faceswap`)."""
    from genstudio.faceswap.zoo import ID_PREFIX, FaceModelZoo

    if not model_id.startswith(ID_PREFIX) or "faceswap" not in state.studios.names():
        return None
    zoo = FaceModelZoo(state.settings)
    return zoo if zoo.has(model_id) else None


@router.delete("/models/{model_id}")
def remove_model(model_id: ModelId, state: State) -> Deleted:
    """Unregister a model you added (files the studio downloaded are deleted; your own are not)."""
    zoo = _face_zoo(state, model_id)
    if zoo is not None:
        zoo.remove(model_id)  # unregistered; the user's file stays
        return Deleted(deleted=model_id)
    registry = _registry(state)
    if model_id.startswith("builtin:"):
        raise LimitError("model_id", f"{model_id!r} is built in and cannot be removed")
    try:
        registry.remove(model_id)
    except ModelError as exc:
        raise HTTPException(404, detail=f"model_id: no user-added model {model_id!r}") from exc
    return Deleted(deleted=model_id)


@router.post("/models/{model_id}/default")
def default_model(model_id: ModelId, state: State) -> ModelInfo:
    """The model used when a request names none (for a face-swap model: the active one of its role)."""
    zoo = _face_zoo(state, model_id)
    if zoo is not None:
        zoo.set_active(model_id)
        return ModelInfo(**[m for m in state.studios.models("faceswap") if m["id"] == model_id][0])
    registry = _registry(state)
    try:
        registry.set_default(model_id)
    except ModelError as exc:
        raise HTTPException(404, detail=f"model_id: unknown model {model_id!r}") from exc
    found = [m for m in state.studios.models("image") if m["id"] == model_id]
    return ModelInfo(**found[0])
