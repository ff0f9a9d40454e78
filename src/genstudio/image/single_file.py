"""Single-file checkpoints (A1111 / CivitAI layout) of SD 1.x, SD 2.x and SDXL, loaded offline.

diffusers' `from_single_file` needs each family's configuration (a diffusers folder: model_index.json, the
UNet, VAE and text-encoder configs, the tokenizer files, a scheduler config), which it otherwise fetches
from the hub. These are written here from the published architectures (the configs of the reference
repositories, reduced to what the loaders read) and materialised once into the data dir. The CLIP BPE
vocabulary comes from the open-clip-torch wheel (MIT, `configs/LICENSE-open_clip.txt`): the same
49,408-token vocabulary OpenAI's CLIP, SD 1.x, SD 2.x (OpenCLIP) and SDXL use.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from genstudio.storage.files import atomic_write

CONFIGS = Path(__file__).resolve().parent / "configs"
BPE_FILE = CONFIGS / "clip_bpe_simple_vocab_16e6.txt.gz"
LAYOUT_VERSION = "1"  # bump when a config below changes: materialised folders are rewritten

_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}

_SD_VAE = {
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

_SD_UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "sample_size": 64,
}

# OpenAI CLIP ViT-L/14 text tower (SD 1.x; SDXL's first encoder)
_CLIP_L = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
# OpenCLIP ViT-H/14 (SD 2.x: its penultimate layer, hence 23 of 24 layers)
_OPENCLIP_H = _CLIP_L | {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
# OpenCLIP ViT-bigG/14 (SDXL's second encoder, with its projection)
_OPENCLIP_G = _CLIP_L | {
    "architectures": ["CLIPTextModelWithProjection"],
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}

_SD_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "safety_checker": [None, None],
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
}

FAMILIES: dict[str, dict[str, Any]] = {
    # SD 1.x at 512 px, epsilon prediction
    "sd1": {
        "model_index.json": _SD_INDEX,
        "unet/config.json": _SD_UNET,
        "vae/config.json": _SD_VAE,
        "text_encoder/config.json": _CLIP_L,
        "tokenizer": "<|endoftext|>",
        "scheduler/scheduler_config.json": _SCHEDULER | {"_class_name": "DDIMScheduler", "prediction_type": "epsilon"},
    },
    # SD 2.x at 768 px, v-prediction (2.0-v, 2.1): diffusers' own default for an SD 2 checkpoint
    "sd2": {
        "model_index.json": _SD_INDEX,
        "unet/config.json": _SD_UNET | {
            "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": True,
            "upcast_attention": True, "sample_size": 96,
        },
        "vae/config.json": _SD_VAE | {"sample_size": 768},
        "text_encoder/config.json": _OPENCLIP_H,
        "tokenizer": "!",
        "scheduler/scheduler_config.json": _SCHEDULER | {"_class_name": "DDIMScheduler",
                                                         "prediction_type": "v_prediction"},
    },
    # SD 2.x base at 512 px, epsilon prediction (2.0-base, 2.1-base): `models add FILE --config sd2-base`
    "sd2-base": {
        "model_index.json": _SD_INDEX,
        "unet/config.json": _SD_UNET | {
            "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": True,
        },
        "vae/config.json": _SD_VAE,
        "text_encoder/config.json": _OPENCLIP_H,
        "tokenizer": "!",
        "scheduler/scheduler_config.json": _SCHEDULER | {"_class_name": "DDIMScheduler", "prediction_type": "epsilon"},
    },
    # SDXL base 1.0 at 1024 px (and its fine-tunes: Pony, Juggernaut, Turbo/Lightning merges)
    "sdxl": {
        "model_index.json": {
            "_class_name": "StableDiffusionXLPipeline",
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "force_zeros_for_empty_prompt": True,
        },
        "unet/config.json": _SD_UNET | {
            "addition_embed_type": "text_time",
            "addition_embed_type_num_heads": 64,
            "addition_time_embed_dim": 256,
            "attention_head_dim": [5, 10, 20],
            "block_out_channels": [320, 640, 1280],
            "cross_attention_dim": 2048,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "projection_class_embeddings_input_dim": 2816,
            "sample_size": 128,
            "transformer_layers_per_block": [1, 2, 10],
            "use_linear_projection": True,
        },
        "vae/config.json": _SD_VAE | {"sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True},
        "text_encoder/config.json": _CLIP_L,
        "text_encoder_2/config.json": _OPENCLIP_G,
        "tokenizer": "<|endoftext|>",
        "tokenizer_2": "!",
        "scheduler/scheduler_config.json": _SCHEDULER | {
            "_class_name": "EulerDiscreteScheduler", "prediction_type": "epsilon", "interpolation_type": "linear",
            "use_karras_sigmas": False,
        },
    },
}
# Inpainting checkpoints (sd-v1-5-inpainting, 512-inpainting-ema, sd_xl_base_1.0_inpainting): the family's
# configuration with a 9-channel UNet input (latents, mask, masked-picture latents), chosen from the weights.
for _name in ("sd1", "sd2-base", "sdxl"):
    FAMILIES[f"{_name}-inpaint"] = FAMILIES[_name] | {
        "unet/config.json": FAMILIES[_name]["unet/config.json"] | {"in_channels": 9}}
# A single file's family (from its keys) -> the config used when the user names none.
DEFAULT_FOR_FAMILY = {"sd1": "sd1", "sd2": "sd2", "sdxl": "sdxl"}


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) of CLIP's byte-level BPE, built from the BPE merge list as CLIP builds it: the 256
    byte symbols, the same with the end-of-word mark, one token per merge, then the two special tokens."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    with gzip.open(BPE_FILE, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def _tokenizer_files(folder: Path, pad: str) -> None:
    vocab, merges = clip_vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False).encode())
    atomic_write(folder / "merges.txt", ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": pad}
    config = special | {"model_max_length": 77, "do_lower_case": True, "errors": "replace",
                        "tokenizer_class": "CLIPTokenizer"}
    atomic_write(folder / "tokenizer_config.json", json.dumps(config, indent=2).encode())
    atomic_write(folder / "special_tokens_map.json", json.dumps(special, indent=2).encode())


def config_folder(name: str, root: Path) -> Path:
    """The diffusers configuration folder of family config `name` (see FAMILIES), written under `root` once
    (rewritten when LAYOUT_VERSION changes). Raises KeyError for an unknown name."""
    files = FAMILIES[name]
    folder = root / name
    stamp = folder / ".genstudio-layout"
    if stamp.is_file() and stamp.read_text() == LAYOUT_VERSION:
        return folder
    for rel, content in files.items():
        if rel.startswith("tokenizer"):
            _tokenizer_files(folder / rel, pad=content)
            continue
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(dest, json.dumps(content, indent=2).encode())
    atomic_write(stamp, LAYOUT_VERSION.encode())
    return folder
