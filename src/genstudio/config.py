"""All settings in one place: environment variables with the GENSTUDIO_ prefix, CLI flags override them."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_TOKEN_CHARS = 16


class Settings(BaseSettings):
    """Every limit is a setting; the defaults below are the documented ones (README, "Settings")."""

    model_config = SettingsConfigDict(env_prefix="GENSTUDIO_", env_file=None, extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("genstudio")))
    database_url: str | None = None
    broker_url: str | None = None
    api_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Host names (any port) that requests may name in Host and Origin besides the loopback names; "*" = any.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Queue
    max_queued_jobs: int = Field(default=32, ge=1)
    workers: int = Field(default=1, ge=1, le=16)
    heartbeat_timeout_s: float = Field(default=15.0, gt=0, description="distributed: a worker silent this long is dead")
    executor: Literal["process", "thread"] = "process"  # where jobs run: a child process, or a worker thread
    torch_threads: int = Field(default=0, ge=0, description="0 = torch's default")
    device: str = Field(
        default="auto", description="where image pipelines run: auto (CUDA, then MPS, then CPU), cpu, cuda:N, mps"
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="pipeline precision; auto: float16 on GPUs, float32 or bfloat16 on the CPU")
    memory: Literal["auto", "normal", "low", "minimal"] = Field(
        default="auto", description="low: attention slicing, VAE tiling, model offload; minimal: sequential offload")
    job_nice: int = Field(
        default=10, ge=0, le=19,
        description="niceness of the job process: models use every idle core, the server answers first",
    )

    # Image limits
    max_prompt_chars: int = Field(default=1000, ge=1)
    max_steps: int = Field(default=100, ge=1)
    max_batch: int = Field(default=8, ge=1)
    min_size: int = Field(default=64, ge=8)
    max_size: int = Field(default=1536, ge=64)
    max_guidance: float = Field(default=30.0, gt=0)

    # Music limits
    max_melodies: int = Field(default=64, ge=1, description="melodies per music job")
    max_bars: int = Field(default=64, ge=2, description="bars per melody (4/4)")
    min_tempo: float = Field(default=20.0, gt=0)
    max_tempo: float = Field(default=300.0, gt=0)
    max_interpolation_steps: int = Field(default=32, ge=2)
    music_model: str = Field(default="builtin:melody-2bar", description="built-in name or a model folder")
    music_long_model: str = Field(
        default="builtin:melody-16bar",
        description="hierarchical long-melody model (built-in name or folder); empty: chain 2-bar codes",
    )
    harmony_model: str = Field(default="builtin:chorale-4voice", description="Coconet model: built-in name or folder")

    # Uploads
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=4096 * 4096, ge=64 * 64)
    # Hostile-file caps, checked from headers before anything is decoded (a 4xx names the setting)
    max_midi_notes: int = Field(default=20_000, ge=1, description="note-on events in an uploaded MIDI file")
    max_midi_seconds: float = Field(default=600.0, gt=0, description="length of an uploaded MIDI file")
    max_audio_seconds: float = Field(default=600.0, gt=0, description="longest WAV rendered from a MIDI file")
    parse_pool: Literal["process", "thread"] = Field(
        default="process",
        description="where uploads are parsed and files verified: child processes with a time limit, or threads",
    )
    parse_workers: int = Field(default=1, ge=1, description="child processes that parse uploads and verify files")
    parse_timeout_s: float = Field(default=30.0, gt=0, description="longest one upload check or verify may take")
    min_free_disk_mb: float = Field(
        default=64.0, ge=0, description="free space on the data disk under which new jobs are refused (507)"
    )

    # Face swap (the safeguards themselves have no switch: label, watermark, manifest and consent always apply)
    faceswap_max_video_seconds: float = Field(default=60.0, gt=0, description="longest target video")
    faceswap_max_frames: int = Field(default=3600, ge=1, description="most frames in a target video")
    faceswap_max_side: int = Field(default=1920, ge=64, description="largest width or height of a target")
    faceswap_consent_min_chars: int = Field(default=20, ge=1, description="shortest consent statement")
    faceswap_retention_hours: float = Field(
        default=24.0, gt=0, description="uploads used by face swap are deleted this long after upload"
    )
    faceswap_sweep_interval_s: float = Field(default=600.0, gt=0, description="how often the retention sweep runs")
    faceswap_threads: int = Field(default=0, ge=0, description="threads for the swap engine; 0 = its default")
    faceswap_live_max_side: int = Field(default=960, ge=64, description="largest live (webcam) frame side")
    faceswap_live_max_sessions: int = Field(default=2, ge=1, description="live (webcam) sessions at once")
    faceswap_engine: Literal["landmark", "onnx"] = Field(
        default="landmark", description="landmark: built-in mesh warp; onnx: your inswapper-style model"
    )
    faceswap_swap_model: Path | None = Field(default=None, description="onnx engine: the swap model (.onnx)")
    faceswap_recognition_model: Path | None = Field(
        default=None, description="onnx engine: the face-recognition model (.onnx, 112x112 -> 512)"
    )
    faceswap_onnx_colour_match: bool = Field(default=False, description="onnx engine: LAB colour transfer too")
    faceswap_swap_style: Literal["inswapper", "hyperswap", "simswap"] = Field(
        default="inswapper", description="onnx engine: the swap model's family (its crop and input scaling)"
    )
    faceswap_enhancer_model: Path | None = Field(
        default=None, description="face enhancer (.onnx, GFPGAN / GPEN / CodeFormer style) for requests' `enhance`"
    )
    faceswap_occluder_model: Path | None = Field(
        default=None, description="occlusion mask model (.onnx, XSeg style) for requests' `occlusion_mask`"
    )
    faceswap_parser_model: Path | None = Field(
        default=None, description="face parser (.onnx, BiSeNet style, 19 classes) for requests' `region_mask`"
    )
    faceswap_parser_regions: str = Field(
        default="skin,left_brow,right_brow,left_eye,right_eye,nose,mouth,upper_lip,lower_lip",
        description="face parser classes that take the swap (comma-separated CelebAMask-HQ names)",
    )

    # Models
    default_image_model: str = "builtin:emoji-tiny"
    models_dir: Path | None = None
    allow_hub_downloads: bool = True

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, v: object) -> object:
        text = str(v).strip().lower()
        if not re.fullmatch(r"auto|cpu|cuda|cuda:\d{1,2}|mps", text):
            raise ValueError(f"GENSTUDIO_DEVICE={v!r}: use auto, cpu, cuda, cuda:N or mps")
        return text

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("api_token", mode="after")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        # A custom error type: the message reaches the CLI's one line as is, without "Value error, ".
        if v is None:
            return v
        if not v.strip():
            raise PydanticCustomError("token", "GENSTUDIO_API_TOKEN is blank; unset it or set a real token")
        if any(c.isspace() or not c.isprintable() for c in v):
            raise PydanticCustomError("token", "GENSTUDIO_API_TOKEN must not hold spaces or control characters")
        if len(v) < MIN_TOKEN_CHARS:
            raise PydanticCustomError(
                "token",
                "GENSTUDIO_API_TOKEN has {got} characters; at least {least} are required "
                "(python -c 'import secrets; print(secrets.token_urlsafe(24))' makes one)",
                {"got": len(v), "least": MIN_TOKEN_CHARS},
            )
        return v

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, v: object) -> object:
        """A comma list (the environment's form) or a list; names are kept lower-case, without a port."""
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            return v
        names = []
        for item in items:
            name = str(item).strip().lower()
            if not name:
                continue
            if "/" in name or "@" in name:
                raise PydanticCustomError(
                    "host", "GENSTUDIO_ALLOWED_HOSTS takes host names such as studio.lan, not URLs: '{name}'",
                    {"name": name},
                )
            names.append(host_name(name))
        return names

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'genstudio.db'}"

    @property
    def assets_dir(self) -> Path:
        return self.data_dir / "assets"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def manifests_dir(self) -> Path:
        """Every manifest signed here, by watermark id (credentials recovered for copies that lost theirs)."""
        return self.data_dir / "manifests"

    @property
    def model_dir(self) -> Path:
        return self.models_dir or (self.data_dir / "models")

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.assets_dir, self.model_dir, self.data_dir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)

    def check_bind(self, host: str) -> None:
        """Refuse to serve beyond loopback without a token."""
        if host not in LOOPBACK_HOSTS and not self.api_token:
            raise ValueError(f"refusing to bind {host}: set GENSTUDIO_API_TOKEN to serve beyond loopback")


def host_name(value: str) -> str:
    """The name part of a Host header or a host[:port] entry: lower-case, no port, no IPv6 brackets."""
    v = value.strip().lower()
    if v.startswith("["):
        end = v.find("]")
        v = v[1:end] if end > 0 else v[1:]
    elif v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
