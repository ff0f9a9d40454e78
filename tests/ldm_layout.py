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


def _unet_prefixes(config: Any) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) for an SD UNet: down blocks of `layers_per_block` resnets (attention
    where the block type has it), a middle block, up blocks of one more resnet each; SDXL's added
    embedding is `label_emb`."""
    per = config.layers_per_block
    down_attn = ["CrossAttn" in t for t in config.down_block_types]
    up_attn = ["CrossAttn" in t for t in config.up_block_types]
    n = len(down_attn)
    out = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
           ("add_embedding.linear_1.", "label_emb.0.0."), ("add_embedding.linear_2.", "label_emb.0.2."),
           ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
           ("mid_block.attentions.0.", "middle_block.1.")]
    for j in range(2):
        out.append((f"mid_block.resnets.{j}.", f"middle_block.{2 * j}."))
    for i in range(n):
        for j in range(per):
            block = (per + 1) * i + j + 1
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{block}.0."))
            if down_attn[i]:
                out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{block}.1."))
        if i < n - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(per + 1) * (i + 1)}.0.op."))
        for j in range(per + 1):
            block = (per + 1) * i + j
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{block}.0."))
            if up_attn[i]:
                out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{block}.1."))
        if i < n - 1:
            slot = 2 if up_attn[i] else 1
            out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(per + 1) * i + per}.{slot}."))
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


def unet_to_ldm(sd: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    prefixes = _unet_prefixes(config)
    return {"model.diffusion_model." + _rename(k, prefixes, _RESNET): v for k, v in sd.items()}


def controlnet_to_ldm(sd: dict[str, torch.Tensor], unet_config: Any) -> dict[str, torch.Tensor]:
    """A diffusers ControlNet in the layout of the original ControlNet checkpoints (`control_model.*`): its
    copy of the UNet's encoder named as the UNet's, the hint encoder as `input_hint_block.{0,2,..,12,14}`,
    the zero convolutions as `zero_convs.N.0` and `middle_block_out.0`."""
    prefixes = _unet_prefixes(unet_config)
    out = {}
    for key, value in sd.items():
        if key.startswith("controlnet_cond_embedding."):
            rest = key.removeprefix("controlnet_cond_embedding.")
            if rest.startswith("conv_in."):
                name = "input_hint_block.0." + rest.removeprefix("conv_in.")
            elif rest.startswith("conv_out."):
                name = "input_hint_block.14." + rest.removeprefix("conv_out.")
            else:  # blocks.K.weight -> input_hint_block.2(K+1).weight
                _, k, param = rest.split(".", 2)
                name = f"input_hint_block.{2 * (int(k) + 1)}.{param}"
        elif key.startswith("controlnet_down_blocks."):
            _, n, param = key.split(".", 2)
            name = f"zero_convs.{n}.0.{param}"
        elif key.startswith("controlnet_mid_block."):
            name = "middle_block_out.0." + key.removeprefix("controlnet_mid_block.")
        else:
            name = _rename(key, prefixes, _RESNET)
        out["control_model." + name] = value.contiguous()
    return out


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


def _text_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model's state dict with its keys as transformers 4 named them."""
    return {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v for k, v in sd.items()}


def openclip_to_ldm(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A CLIP text model (diffusers/transformers naming) in OpenCLIP's layout: fused q/k/v projections,
    resblocks, ln_1/ln_2, c_fc/c_proj, a transposed text projection."""
    sd = _text_keys(sd)
    out: dict[str, torch.Tensor] = {}
    fixed = {"text_model.embeddings.token_embedding.weight": "token_embedding.weight",
             "text_model.embeddings.position_embedding.weight": "positional_embedding",
             "text_model.final_layer_norm.weight": "ln_final.weight",
             "text_model.final_layer_norm.bias": "ln_final.bias"}
    inner = [("self_attn.out_proj.", "attn.out_proj."), ("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."),
             ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")]
    layers = sorted({int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers.")})
    for k, v in sd.items():
        if k in fixed:
            out[prefix + fixed[k]] = v
        elif k == "text_projection.weight":
            out[prefix + "text_projection"] = v.T.contiguous()
        elif k.startswith("text_model.encoder.layers.") and ".self_attn." not in k.replace("self_attn.out_proj", ""):
            i, rest = k.split(".")[3], ".".join(k.split(".")[4:])
            for a, b in inner:
                if rest.startswith(a):
                    rest = b + rest[len(a):]
            out[f"{prefix}transformer.resblocks.{i}.{rest}"] = v
    for i in layers:
        for kind in ("weight", "bias"):
            parts = [sd[f"text_model.encoder.layers.{i}.self_attn.{x}_proj.{kind}"] for x in "qkv"]
            out[f"{prefix}transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(parts, 0)
    return out


def _finish(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(dtype).contiguous() for k, v in state.items()}


def sd1_single_file(pipe: Any, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """An SD 1.x pipeline's weights in the A1111 single-file layout."""
    state = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config) | vae_to_ldm(pipe.vae.state_dict())
    # Real files name the text model as transformers 4 did (text_model.embeddings..., text_model.encoder...)
    state |= {"cond_stage_model.transformer." + k: v for k, v in _text_keys(pipe.text_encoder.state_dict()).items()}
    out = _finish(state, dtype)
    # Real SD 1.x files carry CLIP's position ids (a buffer newer transformers no longer saves); loaders
    # look for them to find the text encoder.
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    return out


def sd2_single_file(pipe: Any, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """An SD 2.x pipeline's weights in the single-file layout (OpenCLIP text encoder)."""
    state = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config) | vae_to_ldm(pipe.vae.state_dict())
    state |= openclip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.model.")
    return _finish(state, dtype)


def sdxl_single_file(pipe: Any, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """An SDXL pipeline's weights in the single-file (SGM) layout: conditioner.embedders.0 (CLIP-L) and .1
    (OpenCLIP bigG with its projection)."""
    state = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config) | vae_to_ldm(pipe.vae.state_dict())
    clip_l = _text_keys(pipe.text_encoder.state_dict())
    state |= {"conditioner.embedders.0.transformer." + k: v for k, v in clip_l.items()}
    state |= openclip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model.")
    out = _finish(state, dtype)
    out["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    return out


def random_pipeline(family: str, cfg: Any, dtype: torch.dtype = torch.float32, euler: bool = False) -> Any:
    """A full-size pipeline of `family` ("sd1", "sd2", "sdxl") from the config folder `cfg`, with random
    weights (scaled so activations stay finite through the steps), built directly in `dtype`. SD 1.x/2.x get
    DDIM, or Euler with `euler` (SDXL always Euler)."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        parts: dict[str, Any] = {
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder")),
            "tokenizer": CLIPTokenizer.from_pretrained(cfg / "tokenizer"),
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet")),
        }
        if family == "sdxl":
            parts["scheduler"] = EulerDiscreteScheduler.from_pretrained(cfg / "scheduler")
            config_2 = CLIPTextConfig.from_pretrained(cfg / "text_encoder_2")
            parts["text_encoder_2"] = CLIPTextModelWithProjection(config_2)
            parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(cfg / "tokenizer_2")
            pipe = StableDiffusionXLPipeline(**parts)
        else:
            parts["scheduler"] = (EulerDiscreteScheduler if euler else DDIMScheduler).from_pretrained(cfg / "scheduler")
            pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                           requires_safety_checker=False)
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            module = getattr(pipe, name, None)
            if module is not None:
                for p in module.parameters():
                    p.mul_(0.5)
    pipe.set_progress_bar_config(disable=True)
    return pipe


SINGLE_FILE_WRITERS = {"sd1": sd1_single_file, "sd2": sd2_single_file, "sdxl": sdxl_single_file}
