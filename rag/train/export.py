"""A trained checkpoint -> ONNX (float32) -> int8, with the sha256 of each file.

Outputs ``relevance`` [batch], ``start`` and ``end`` [batch, tokens]; inputs are BERT's three
(input_ids, attention_mask, token_type_ids), batch and length dynamic. Needs torch (the
``train`` extra); the service only loads the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..digest import file_digest

FP32 = "reader-fp32.onnx"
INT8 = "reader-int8.onnx"
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def load_checkpoint(ckpt: Path):  # type: ignore[no-untyped-def]
    """The torch reader of a checkpoint (eval mode) and its training config."""
    import torch

    from .trainer import network

    state = torch.load(ckpt, weights_only=False, map_location="cpu")
    model = network(state["config"]["layers"])
    model.load_state_dict(state["model"])
    return model.eval(), state["config"]


def export(ckpt: Path, out: Path) -> dict[str, Any]:
    """Write OUT/reader-fp32.onnx and OUT/reader-int8.onnx; their sha256 by name."""
    model, _ = load_checkpoint(ckpt)
    return export_model(model, out)


def export_model(model: Any, out: Path) -> dict[str, Any]:
    """``export`` for a torch reader already in memory (eval mode)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[101, 2054, 102, 2009, 2003, 102]] * 2)
    args = (ids, torch.ones_like(ids), torch.tensor([[0, 0, 0, 1, 1, 1]] * 2))
    axes = {n: {0: "batch", 1: "tokens"} for n in INPUTS}
    axes.update({"relevance": {0: "batch"}, "start": {0: "batch", 1: "tokens"},
                 "end": {0: "batch", 1: "tokens"}})
    with torch.no_grad():
        torch.onnx.export(model, args, str(out / FP32), input_names=INPUTS,
                          output_names=["relevance", "start", "end"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    quantize_dynamic(str(out / FP32), str(out / INT8), weight_type=QuantType.QInt8)
    return {name: file_digest(out / name) for name in (FP32, INT8)}

