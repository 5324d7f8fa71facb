"""What the reader costs on this CPU: seconds per training step (2, 4, 6 layers; float32 vs
bfloat16 autocast; full 96-token pairs vs 64-token ones, which length bucketing gives on
average) and the ONNX Runtime forward pass at serve time (float32 vs int8, int8 with idle threads
spinning or sleeping, 4 and 8 windows of 80 and 96 tokens, 1 and 2 threads).

    .venv/bin/python bench/reader_steps.py [--steps 6] [--serve-only] [--json OUT]

ONNX Runtime's CPU provider has no bfloat16 kernels (a bf16 graph does not load), so bf16 is
timed for training only.

Training steps use the project's network() with word embeddings frozen, AdamW, batch 32,
SDPA attention (transformers' default); median of the timed steps after two warm-up ones.
Weights are the untrained heads on MiniLM's first layers: cost does not depend on them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info  # noqa: E402


def step_time(layers: int, bf16: bool, length: int, steps: int, batch: int = 32) -> float:
    """Median seconds of one training step."""
    import torch

    from rag.train.trainer import loss_of, network

    torch.manual_seed(0)
    m = network(layers)
    m.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(1000, 20000, (batch, length))
    ids[:, 0] = 101
    types = torch.zeros(batch, length, dtype=torch.long)
    types[:, 20:] = 1
    b = (ids, torch.ones(batch, length, dtype=torch.long), types,
         torch.randint(0, 2, (batch,)), torch.randint(0, length, (batch,)),
         torch.randint(0, length, (batch,)))
    ts = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _, _ = loss_of(m, b, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts[2:]))


def serve_time(layers: int, windows: int, tokens: int = 80, threads: int = 2, reps: int = 30
               ) -> dict[str, float]:
    """Median ms of one ONNX forward over ``windows`` pairs of ``tokens``, fp32 and int8
    (``threads`` intra-op threads, idle threads sleeping, as the service runs concurrent
    reads), and int8 with idle threads spinning (``int8_spin``: a read with none other in
    flight)."""
    import onnxruntime as ort

    from rag.train.export import FP32, INT8, export_model
    from rag.train.trainer import network

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        export_model(network(layers).eval(), Path(d))
        ids = np.random.default_rng(0).integers(1000, 20000, (windows, tokens)).astype(np.int64)
        ids[:, 0] = 101
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids)}
        for kind, name, spin in (("fp32", FP32, "0"), ("int8", INT8, "0"),
                                 ("int8_spin", INT8, "1")):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
            s = ort.InferenceSession(str(Path(d) / name), opts, providers=["CPUExecutionProvider"])
            for _ in range(5):
                s.run(None, feed)
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                s.run(None, feed)
                ts.append(1000 * (time.perf_counter() - t))
            out[kind] = float(np.median(ts))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--serve-only", action="store_true", help="the forward pass only (~2 min)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from rag.train.trainer import cpu_flags, use_bf16

    torch.set_num_threads(2)
    r: dict[str, Any] = {"machine": machine_info(),
                         "bf16_units": sorted({"amx_bf16", "avx512_bf16"} & cpu_flags()),
                         "auto_precision": "bf16" if use_bf16("auto") else "fp32",
                         "train": [], "serve": []}
    for layers in () if args.serve_only else (2, 4, 6):
        for length in (96, 64):
            row = {"layers": layers, "tokens": length,
                   "fp32_s": step_time(layers, False, length, args.steps),
                   "bf16_s": step_time(layers, True, length, args.steps)}
            r["train"].append(row)
            print(json.dumps(row), flush=True)
    for layers in (2, 4, 6):
        for windows, tokens, threads in itertools.product((4, 8), (80, 96), (2, 1)):
            row = {"layers": layers, "windows": windows, "tokens": tokens, "threads": threads,
                   **serve_time(layers, windows, tokens, threads)}
            r["serve"].append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
