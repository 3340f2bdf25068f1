"""Model checkpoints: architecture + weights + provenance, loaded without unpickling arbitrary code
(`torch.load(weights_only=True)`: tensors, numbers, strings, lists and dicts only)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .architectures import build
from .targets import TRAINING_SPEC


def save_checkpoint(path: Path, model: nn.Module, info: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"family": model.family, "width": model.width, "depth": model.depth, "state_dict": model.state_dict(), "info": info}, path)


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (train it first: ppg-distill train-teacher ...)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = build(blob["family"], TRAINING_SPEC, int(blob["width"]), int(blob["depth"]))
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a ppg-distill checkpoint ({str(e).splitlines()[0][:200]})") from None
    model.eval()
    return model, blob.get("info", {})
