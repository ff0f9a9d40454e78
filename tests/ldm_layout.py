"""Write a diffusers SD 1.x pipeline as an A1111 / CivitAI single file (the original LDM layout), so the
single-file loader is tested on files shaped like the ones users download.

The layout (the inverse of diffusers' LDM conversion): UNet under `model.diffusion_model.` with
input/middle/output blocks, VAE under `first_stage_model.` with 1x1-conv attention, CLIP-L text model
under `cond_stage_model.transformer.`."""

from __future__ import annotations

from typing import Any

import torch

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def _unet_prefixes() -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) for the SD 1.x UNet: 4 down blocks of 2 resnets (attention in the
    first three), a middle block, 4 up blocks of 3 resnets (attention in the last three)."""
    out = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
           ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
           ("mid_block.attentions.0.", "middle_block.1.")]
    for j in range(2):
        out.append((f"mid_block.resnets.{j}.", f"middle_block.{2 * j}."))
    for i in range(4):
        for j in range(2):
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{3 * i + j + 1}.0."))
            if i < 3:
                out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{3 * i + j + 1}.1."))
        if i < 3:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{3 * (i + 1)}.0.op."))
        for j in range(3):
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{3 * i + j}.0."))
            if i > 0:
                out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{3 * i + j}.1."))
        if i < 3:
            out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}."))
    return out


def _rename(key: str, prefixes: list[tuple[str, str]], inner: list[tuple[str, str]]) -> str:
    for src, dst in sorted(prefixes, key=lambda p: -len(p[0])):
        if key.startswith(src):
            rest = key[len(src):]
            if ".resnets." in src or src.startswith(("mid_block.resnets", "encoder.down", "decoder.up")):
                for a, b in inner:
                    if rest.startswith(a + "."):
                        rest = b + rest[len(a):]
                        break
            return dst + rest
    return key


def unet_to_ldm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefixes = _unet_prefixes()
    return {"model.diffusion_model." + _rename(k, prefixes, _RESNET): v for k, v in sd.items()}


def vae_to_ldm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefixes = [("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out."),
                ("encoder.mid_block.attentions.0.", "encoder.mid.attn_1."),
                ("decoder.mid_block.attentions.0.", "decoder.mid.attn_1.")]
    for part in ("encoder", "decoder"):
        for j in range(2):
            prefixes.append((f"{part}.mid_block.resnets.{j}.", f"{part}.mid.block_{j + 1}."))
    for i in range(4):
        for j in range(2):
            prefixes.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}."))
        for j in range(3):
            prefixes.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{3 - i}.block.{j}."))
        if i < 3:
            prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"encoder.down.{i}.downsample.conv."))
            prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"decoder.up.{3 - i}.upsample.conv."))
    attn = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    out = {}
    for k, v in sd.items():
        name = _rename(k, prefixes, [("conv_shortcut", "nin_shortcut")])
        if ".attn_1." in name:
            head, tail = name.split(".attn_1.", 1)
            for a, b in attn:
                if tail.startswith(a):
                    tail = b + tail[len(a):]
                    break
            name = f"{head}.attn_1.{tail}"
            if v.ndim == 2:  # LDM's attention projections are 1x1 convolutions
                v = v[:, :, None, None]
        out["first_stage_model." + name] = v
    return out


def sd1_single_file(pipe: Any, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """An SD 1.x pipeline's weights in the A1111 single-file layout."""
    state = unet_to_ldm(pipe.unet.state_dict()) | vae_to_ldm(pipe.vae.state_dict())
    # Real files name the text model as transformers 4 did: text_model.embeddings..., text_model.encoder...
    text = {k if k.startswith("text_model.") else f"text_model.{k}": v
            for k, v in pipe.text_encoder.state_dict().items()}
    state |= {"cond_stage_model.transformer." + k: v for k, v in text.items()}
    out = {k: v.detach().to(dtype).contiguous() for k, v in state.items()}
    # Real SD 1.x files carry CLIP's position ids (a buffer newer transformers no longer saves); loaders
    # look for them to find the text encoder.
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    return out
