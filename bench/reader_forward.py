"""The reader's forward pass at serve time, ONNX Runtime float32 vs int8, for 2, 4 and 6
layers at the shapes the service reads (4 or 8 windows of 80 or 96 tokens), 1 and 2 threads.

    .venv/bin/python bench/reader_forward.py [--runs 30] [--json OUT]

Needs the train extra (torch) to build the networks: MiniLM's first N layers with the
reader's heads (untrained heads: the time of a forward pass does not depend on the weights).
ONNX Runtime's CPU provider has no bfloat16 kernels (a bf16 graph does not load; its int8
GEMMs use AMX where the CPU has it), so bf16 is not measured here; training's bf16 is
`bench/reader_steps.py`. Prints a markdown table and the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import loadavg, machine_info  # noqa: E402

SHAPES = ((4, 80), (4, 96), (8, 80), (8, 96))


def inputs(batch: int, tokens: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch laid out like the reader's pairs: 16 question tokens, then the window."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 29000, (batch, tokens)).astype(np.int64)
    ids[:, 0], ids[:, 17], ids[:, -1] = 101, 102, 102
    types = np.zeros_like(ids)
    types[:, 18:] = 1
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types}


def time_session(path: Path, threads: int, feeds: dict[str, np.ndarray], runs: int) -> float:
    """Median milliseconds of one forward pass (after 5 warm-up runs)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, feeds)
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        ms.append(1000 * (time.perf_counter() - t))
    return statistics.median(ms)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from rag.train.export import FP32, INT8, export_model
    from rag.train.trainer import network

    rows: list[dict[str, Any]] = []
    load0 = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for layers in args.layers:
            out = Path(tmp) / f"L{layers}"
            export_model(network(layers).eval(), out)
            for batch, tokens in SHAPES:
                feeds = inputs(batch, tokens)
                for threads in (1, 2):
                    rows.append({"layers": layers, "windows": batch, "tokens": tokens,
                                 "threads": threads,
                                 "fp32_ms": time_session(out / FP32, threads, feeds, args.runs),
                                 "int8_ms": time_session(out / INT8, threads, feeds, args.runs)})
                    print(json.dumps(rows[-1]), file=sys.stderr)
    info = {"machine": machine_info(), "load_before": load0, "load_after": loadavg(),
            "runs": args.runs, "rows": rows}
    m = info["machine"]
    print(f"{m.get('cpu')}, {m.get('cores')} cores; load {load0} -> {info['load_after']}; median of {args.runs}\n")
    print("| layers | windows x tokens | threads | float32 | int8 | int8 speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['layers']} | {r['windows']} x {r['tokens']} | {r['threads']} | "
              f"{r['fp32_ms']:.2f} ms | {r['int8_ms']:.2f} ms | {r['fp32_ms'] / r['int8_ms']:.1f}x |")
    if args.json:
        args.json.write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
