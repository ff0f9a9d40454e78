"""Toy add-ons for the tiny SD pipeline, built offline: LoRAs (PEFT / diffusers layout and kohya layout),
a ControlNet copied from the UNet (`ControlNetModel.from_unet`), an upscaler (spandrel's Real-ESRGAN
Compact architecture) and a textual-inversion embedding, each saved as safetensors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file


def _lora_unet(pipe: Any, seed: int, rank: int = 4) -> dict[str, torch.Tensor]:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    unet = copy.deepcopy(pipe.unet)  # adapters leave wrappers behind: never on the caller's UNet
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                        init_lora_weights=False)  # random B too: a LoRA that changes the output
    unet.add_adapter(config, adapter_name="toy")
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return get_peft_model_state_dict(unet, adapter_name="toy")


def save_peft_lora(pipe: Any, path: Path, seed: int = 0, rank: int = 4) -> Path:
    """A LoRA in the diffusers / PEFT layout (what `save_lora_weights` writes: unet.*.lora_A/B.weight)."""
    from diffusers import StableDiffusionPipeline

    state = _lora_unet(pipe, seed, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=state, weight_name=path.name)
    return path


def save_kohya_lora(pipe: Any, path: Path, seed: int = 1) -> Path:
    """The same kind of LoRA in the kohya layout CivitAI serves (lora_unet_*.lora_down/lora_up/alpha)."""
    state: dict[str, torch.Tensor] = {}
    for key, value in _lora_unet(pipe, seed).items():
        # down_blocks.1.attentions.0....attn1.to_q.lora_A.weight -> lora_unet_down_blocks_1_..._to_q.lora_down.weight
        module, kind = key.rsplit(".lora_", 1)
        name = "lora_unet_" + module.removeprefix("unet.").replace(".", "_")
        state[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = value.contiguous()
        if kind.startswith("A"):
            state[f"{name}.alpha"] = torch.tensor(float(value.shape[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def _toy_controlnet(pipe: Any, seed: int, hint_channels: tuple[int, ...]) -> Any:
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    cn = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=hint_channels)
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if "controlnet_down_blocks" in name or "controlnet_mid_block" in name or "conv_out" in name:
                p.normal_(0, 0.3)
    return cn


def save_controlnet(pipe: Any, folder: Path, seed: int = 0) -> Path:
    """A ControlNet of the pipeline's family, its zero convolutions made non-zero so it steers the UNet."""
    _toy_controlnet(pipe, seed, (4, 8)).save_pretrained(folder, safe_serialization=True)
    return folder


def save_single_file_controlnet(pipe: Any, path: Path, seed: int = 0) -> tuple[Path, Any]:
    """The same as one .safetensors file in the original ControlNet layout (control_model.*), with the hint
    encoder of the released models (16, 32, 96, 256); also the model itself, to compare with what loads."""
    from ldm_layout import controlnet_to_ldm

    cn = _toy_controlnet(pipe, seed, (16, 32, 96, 256))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(controlnet_to_ldm(cn.state_dict(), pipe.unet.config), str(path))
    return path, cn


def save_upscaler(path: Path, scale: int = 2, seed: int = 0) -> Path:
    from genstudio.image.upscale import _spandrel

    _spandrel()
    from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

    torch.manual_seed(seed)
    model = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def save_embedding(pipe: Any, path: Path, vectors: int = 2, seed: int = 0) -> Path:
    """An A1111 textual-inversion file: `emb_params`, one row per vector, the text encoder's width."""
    torch.manual_seed(seed)
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(vectors, width)}, str(path))
    return path
