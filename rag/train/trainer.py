"""`rag train-reader`: fine-tune the reader from the bundled MiniLM weights on SQuAD 2.0.

The network is the first ``layers`` transformer layers of all-MiniLM-L6-v2 with two heads:
relevance (one logit from [CLS]: does this window hold the answer?) and answer span (start
and end logits per token). Loss: binary cross-entropy on relevance + ``span_weight`` x the
mean start/end cross-entropy (negatives point at [CLS]). Fixed seed, loss logged as JSON
lines, checkpoints every ``every`` steps (resumable: the data order is a function of the
seed, so a resumed run sees the batches the killed one would have). Needs torch and
transformers (the ``train`` extra).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..search.reader import windows as W
from . import pairs as P
from . import reworded as R

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (recorded in the model card)."""

    data: str = "../shared/qa-train/train-v2.0-subset.json.gz"
    out: str = "train/out/reader"
    layers: int = 4
    epochs: float = 2.0  # passes over the training pairs (steps follow from it unless set)
    steps: int = 0  # 0: epochs x pairs / batch
    batch: int = 32
    lr: float = 1.5e-4
    warmup: int = 200
    span_weight: float = 0.5
    seed: int = 20261201
    every: int = 100  # checkpoint and log period (steps)
    threads: int = 2
    articles: int = 0  # 0: all training articles; >0: the first N (tests, trials)
    precision: str = "auto"  # auto: bfloat16 autocast where the CPU has AMX/AVX512-BF16, else fp32
    bucket: int = 64  # batches sorted by length together (less padding); 1: no bucketing
    init: str = ""  # a checkpoint whose weights start this run (a new leg: fresh optimiser)
    reworded: str = ""  # reworded questions (``reworded.load``) joining their articles
    keep: float = 1.0  # share of the original questions kept (every reworded one is)
    max_len: int = W.MAX_LEN  # tokens of a pair, specials included (the card's ``max_len``)


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo; empty where unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def use_bf16(precision: str) -> bool:
    """Whether to train under bfloat16 autocast: asked for, or ``auto`` on a CPU with
    matrix or vector bf16 units (elsewhere bf16 is emulated and slower than fp32)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision={precision!r}: use auto, bf16 or fp32")
    if precision == "auto":
        return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    return precision == "bf16"


def batches(lengths: np.ndarray, batch: int, bucket: int, seed: int) -> list[np.ndarray]:
    """One epoch's batches of example indices (pure): shuffled, then each run of ``bucket``
    batches sorted by length so a batch pads little, then the batches shuffled again."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    out: list[np.ndarray] = []
    span = batch * max(1, bucket)
    for k in range(0, len(order) - batch + 1, span):
        run = order[k:k + span]
        run = run[np.argsort(lengths[run], kind="stable")]
        out.extend(run[i:i + batch] for i in range(0, len(run) - batch + 1, batch))
    return [out[i] for i in rng.permutation(len(out))]


def network(layers: int, base: Path | None = None):  # type: ignore[no-untyped-def]
    """The torch module: MiniLM's first ``layers`` layers + relevance and span heads."""
    import torch
    from transformers import BertConfig, BertModel

    base = base or W.bundled_model_dir()

    class ReaderNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cfg = BertConfig.from_pretrained(str(base), num_hidden_layers=layers)
            self.bert = BertModel.from_pretrained(str(base), config=cfg, add_pooling_layer=False)
            h = cfg.hidden_size
            self.relevance = torch.nn.Linear(h, 1)
            self.span = torch.nn.Linear(h, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            x = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            se = self.span(x)
            m = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # mean over the pair's tokens
            return self.relevance(pooled).squeeze(-1), se[..., 0], se[..., 1]

    return ReaderNet()


def span_mask(types: Any, mask: Any) -> Any:
    """Positions a span may point at: the window's tokens and [CLS] (no answer)."""
    m = (types * mask).bool()
    m[:, 0] = True
    return m


def loss_of(model, batch, span_weight: float):  # type: ignore[no-untyped-def]
    import torch.nn.functional as F

    ids, mask, types, label, start, end = batch
    rel, s, e = model(ids, mask, types)
    allowed = span_mask(types, mask)
    s = s.masked_fill(~allowed, -1e4)
    e = e.masked_fill(~allowed, -1e4)
    l_rel = F.binary_cross_entropy_with_logits(rel, label.float())
    l_span = (F.cross_entropy(s, start) + F.cross_entropy(e, end)) / 2
    return l_rel + span_weight * l_span, l_rel.detach(), l_span.detach()


def tensors(exs: list[P.Example]):  # type: ignore[no-untyped-def]
    import torch

    ids, mask, types = W.batch([x.ids for x in exs], [x.n_question for x in exs])
    return (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types),
            torch.tensor([x.label for x in exs]), torch.tensor([x.start for x in exs]),
            torch.tensor([x.end for x in exs]))


def save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) for ``cfg.epochs`` (or ``cfg.steps``); returns the final checkpoint."""
    import torch

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    model = network(cfg.layers)
    # The word embeddings stay as MiniLM learnt them: a third of the weights, and most of
    # the optimiser's work per step, for little gain on a fraction of an epoch.
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=0.01)

    articles = P.load_squad(Path(cfg.data))
    train_arts, _ = P.split_articles(articles, cfg.seed)
    if cfg.articles:
        train_arts = train_arts[: cfg.articles]
    if cfg.reworded:
        train_arts = R.add(train_arts, R.load(Path(cfg.reworded)))
    t0 = time.perf_counter()
    data = P.build(train_arts, cfg.seed, keep=cfg.keep, max_len=cfg.max_len)
    log.info("%d training pairs from %d articles in %.0f s", len(data), len(train_arts),
             time.perf_counter() - t0)
    lengths = np.asarray([len(x.ids) for x in data])
    per_epoch = len(batches(lengths, cfg.batch, cfg.bucket, cfg.seed))
    total = cfg.steps or max(1, int(round(cfg.epochs * per_epoch)))
    bf16 = use_bf16(cfg.precision)
    log.info("%d steps (%d a epoch), %s", total, per_epoch, "bf16 autocast" if bf16 else "fp32")

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return max(0.0, (total - step) / max(1, total - cfg.warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ckpt = out / "checkpoint.pt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = state["step"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed at step %d", step)
    elif cfg.init:
        model.load_state_dict(torch.load(cfg.init, weights_only=False)["model"])
        log.info("weights from %s", cfg.init)
    if step >= total:
        return ckpt
    model.train()
    epoch = step // per_epoch
    plan = batches(lengths, cfg.batch, cfg.bucket, cfg.seed + epoch)
    logf = (out / "log.jsonl").open("a")
    acc = {"loss": 0.0, "rel": 0.0, "span": 0.0, "n": 0}
    t_last = time.perf_counter()
    while step < total:
        if step // per_epoch != epoch:
            epoch = step // per_epoch
            plan = batches(lengths, cfg.batch, cfg.bucket, cfg.seed + epoch)
        batch = tensors([data[i] for i in plan[step % per_epoch]])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, l_rel, l_span = loss_of(model, batch, cfg.span_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        acc["loss"] += float(loss.detach())
        acc["rel"] += float(l_rel)
        acc["span"] += float(l_span)
        acc["n"] += 1
        if step % cfg.every == 0 or step == total:
            n = acc["n"]
            rec = {"step": step, "loss": acc["loss"] / n, "relevance": acc["rel"] / n,
                   "span": acc["span"] / n, "lr": sched.get_last_lr()[0],
                   "s_per_step": (time.perf_counter() - t_last) / n}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log.info("%s", rec)
            acc = {"loss": 0.0, "rel": 0.0, "span": 0.0, "n": 0}
            t_last = time.perf_counter()
            save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "step": step,
                         "torch_rng": torch.get_rng_state(), "config": asdict(cfg)}, ckpt)
    logf.close()
    return ckpt


if __name__ == "__main__":  # pragma: no cover - `rag train-reader` is the entry point
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kw = dict(a.split("=", 1) for a in sys.argv[1:])
    fields = TrainConfig.__dataclass_fields__
    train(TrainConfig(**{k: type(getattr(TrainConfig(), k))(v) for k, v in kw.items() if k in fields}))
