"""The reader: windows, calibration and reordering (pure), the training command end to end on
a tiny slice (with ONNX == torch), and the bundled model in the real query pipeline."""

from __future__ import annotations

import gzip
import json
import math
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.search.reader import windows as W
from rag.search.reader.calibration import (Platt, expected_calibration_error, fit_logistic,
                                           fit_platt, reliability, threshold_for)
from rag.search.reader.runtime import Reader, Reading, best_span, bundled_dir, order, rerank
from rag.types import Passage, Span

from .oracles import assert_exact_passage, file_text

# ---------------------------------------------------------------- windows (pure)


def test_window_holds_its_centre_within_the_budget() -> None:
    text = " ".join(f"Sentence number {i} says word{i} here." for i in range(40))
    enc = W.encode([text])[0]
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = int(rng.integers(0, len(text) - 30))
        e = s + int(rng.integers(1, 30))
        budget = int(rng.integers(12, 80))
        w = W.window_around(enc, s, e, budget)
        n = len(enc.ids)
        assert 0 <= w.a < w.b <= n and w.b - w.a == min(budget, n)  # the whole budget used
        centre = np.flatnonzero((enc.ends > s) & (enc.starts < e))  # tokens the centre touches
        if 0 < len(centre) <= budget:  # a centre that fits is inside, in the middle
            left, right = centre[0] - w.a, w.b - 1 - centre[-1]  # tokens either side of it
            assert left >= 0 and right >= 0
            assert w.start <= enc.starts[centre[0]] and enc.ends[centre[-1]] <= w.end
            assert abs(left - right) <= 1 or w.a == 0 or w.b == n, (left, right)


def test_pair_layout_and_token_types() -> None:
    q = W.question_ids("Who wrote it?")
    enc = W.encode(["Ann wrote it in 1900."])[0]
    w = W.window_around(enc, 0, 3, W.budget_for(q))
    p = W.pair(q, enc, w)
    ids, mask, types = W.batch([p, p[:5]], [len(q), len(q)])
    assert p[0] == W.CLS and p[len(q) + 1] == W.SEP and p[-1] == W.SEP
    assert ids.shape == (2, len(p)) and mask[1].sum() == 5
    assert types[0, : len(q) + 2].sum() == 0 and types[0, len(q) + 2:].all()
    assert len(W.question_ids("word " * 100)) == W.MAX_QUESTION


def test_best_span_respects_order_and_length() -> None:
    start = np.array([9.0, 0, 0, 5, 0, 0, 0])
    end = np.array([9.0, 0, 4, 0, 0, 6, 0])
    i, j, p, null = best_span(start, end, 1, 7, max_len=3)
    assert (i, j) == (3, 5) and 0 < p < 1  # not end 2 < start 3; [CLS] (0) never chosen
    assert null == pytest.approx((5 + 6) - (9 + 9))  # the span's logits minus [CLS]'s
    allowed = np.r_[0, np.arange(1, 7)]
    soft = lambda x: np.exp(x[allowed]) / np.exp(x[allowed]).sum()  # noqa: E731
    assert p == pytest.approx(soft(start)[3] * soft(end)[5])  # start x end probability
    i, j, _, _ = best_span(start, end, 1, 7, max_len=2)
    assert j - i < 2


def test_score_of_each_head() -> None:
    from rag.search.reader.runtime import score_of

    assert (score_of("relevance", 2.0, -3.0), score_of("null", 2.0, -3.0),
            score_of("both", 2.0, -3.0)) == (2.0, -3.0, -1.0)
    with pytest.raises(ValueError, match="head"):
        score_of("cls", 0.0, 0.0)


# ---------------------------------------------------------------- calibration (pure)


def test_platt_is_monotone_and_fits_a_known_slope() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, 5000)
    y = rng.random(5000) < 1 / (1 + np.exp(-(1.5 * x - 0.5)))
    p = fit_platt(x, y)
    assert abs(p.a - 1.5) < 0.15 and abs(p.b + 0.5) < 0.15
    grid = np.linspace(-10, 10, 101)
    assert np.all(np.diff(p(grid)) > 0)
    table = reliability(p(x), y)
    assert sum(b.n for b in table) == 5000 and expected_calibration_error(table) < 0.03


def test_answerability_model_recovers_known_weights() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (8000, 3)) * [2.0, 0.5, 1.0] + [1.0, 0.0, -1.0]
    y = rng.random(8000) < 1 / (1 + np.exp(-(x @ [0.8, -1.0, 0.0] + 0.3)))
    m = fit_logistic(x, y)
    assert np.allclose(m.weights, [0.8, -1.0, 0.0], atol=0.12) and abs(m.bias - 0.3) < 0.15
    assert np.all(np.diff(m(np.c_[np.linspace(-5, 5, 50), np.zeros(50), np.zeros(50)])) > 0)


def test_threshold_keeps_the_false_abstain_bound() -> None:
    rng = np.random.default_rng(2)
    conf = rng.random(1000)
    ans = rng.random(1000) < 0.7
    for bound in (0.0, 0.04, 0.1, 0.5):
        t = threshold_for(conf, ans, bound)
        assert (conf[ans] < t).mean() <= bound + 1e-12


# ---------------------------------------------------------------- reordering (pure)


def _passage(rank: int, score: float, text: str, start: int) -> Passage:
    return Passage(rank, score, "f.txt", start, start + len(text), 1, 1, text, "sha",
                   Span(start, start + len(text), 1, 1, text))


def test_rerank_moves_the_read_answer_up_and_marks_it() -> None:
    a = _passage(1, 1.0, "Berlin is the capital of Germany.", 0)
    b = _passage(2, 0.8, "Paris is the capital of France.", 40)
    c = _passage(3, 0.5, "unread tail", 80)
    readings = [Reading(-3.0, 0.05, (0, 6), 0.2, (0, 33)), Reading(4.0, 0.95, (0, 5), 0.9, (0, 31))]
    out = rerank([a, b, c], readings, fusion_weight=1.0, threshold=0.5)
    assert [p.text[:5] for p in out] == ["Paris", "Berli", "unrea"]
    assert [p.rank for p in out] == [1, 2, 3]
    ans = out[0].answer
    assert ans is not None and (ans.start, ans.end, ans.text, ans.score) == (40, 45, "Paris", 0.9)
    assert out[1].answer is None and out[1].read == 0.05  # below the threshold: no answer
    assert out[2].read is None and out[2].answer is None
    # a large enough fusion weight keeps the retrieval order
    assert order([-3.0, 4.0], [1.0, 0.8], 100.0) == [0, 1]


# ---------------------------------------------------------------- training end to end


def _tiny_squad(path: Path) -> None:
    """Five small articles in SQuAD 2.0 layout: answerable and unanswerable questions."""
    data = []
    for k in range(5):
        paras = []
        for j in range(2):
            town, n = f"Town{k}{j}", 1000 + 37 * k + j
            ctx = (f"{town} is a small town in the north of Region{k}. It has a population "
                   f"of {n} people. The main industry of {town} is fishing{j}.")
            s = ctx.index(str(n))
            paras.append({"context": ctx, "qas": [
                {"id": f"{k}{j}a", "question": f"What is the population of {town}?",
                 "answers": [{"text": str(n), "answer_start": s}], "is_impossible": False},
                {"id": f"{k}{j}b", "question": f"What is the area of {town}?", "answers": [],
                 "is_impossible": True}]})
        data.append({"title": f"Region {k}", "paragraphs": paras})
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump({"version": "v2.0", "data": data}, f)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rag.serve.cli import main

    root = tmp_path_factory.mktemp("train")
    _tiny_squad(root / "tiny.json.gz")
    argv = ["train-reader", "--data", str(root / "tiny.json.gz"), "--out", str(root / "out"),
            "--install", str(root / "model"), "--layers", "2", "--steps", "2", "--batch", "4",
            "--every", "1"]
    assert main(argv) == 0
    log = [json.loads(x) for x in (root / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    # resumable: asking for more steps continues from the checkpoint, not from zero
    assert main([*argv[:-4], "--steps", "3", "--batch", "4", "--every", "1"]) == 0
    log = [json.loads(x) for x in (root / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    return root


def test_training_command_end_to_end(tiny_run: Path) -> None:
    card = json.loads((tiny_run / "model" / "card.json").read_text())
    assert card["training"]["config"]["steps"] == 3
    assert card["held_out"]["int8"]["questions"] == 4  # 1 held-out article, 4 questions
    sel = card["calibration"]["selection"]  # without --read-further: 4 or 8 for every question
    assert {r["more_share"] for r in sel} == {0.0} and {r["k"] for r in sel} == {4, 8}
    off = card["held_out"]["int8"]["off_corpus"]  # training articles' questions, off-corpus here
    assert off["questions"] > 0 and all(r["off_corpus_abstain"] is not None for r in sel)
    trade = card["held_out"]["int8"]["trade_off"]  # one threshold's catches and refusals
    assert [t["false_abstain"] for t in trade] == [0.02, 0.05, 0.10]
    assert (tiny_run / "model" / "README.md").read_text().startswith("# rag-reader-minilm-L2")
    r = Reader(tiny_run / "model")
    got = r.read("What is the population of Town00?",
                 [("Town00 has a population of 1000 people.", (0, 10))])
    cal = card["calibration"]  # the card's Platt scaling, applied by hand
    assert len(got) == 1 and got[0].probability == pytest.approx(
        1.0 / (1.0 + math.exp(-(cal["a"] * got[0].logit + cal["b"]))), rel=1e-9)
    assert r.fingerprint.startswith("rag-reader-minilm-L2@")


def test_onnx_float32_equals_torch(tiny_run: Path) -> None:
    import torch

    from rag.train.export import load_checkpoint

    model, _ = load_checkpoint(tiny_run / "out" / "checkpoint.pt")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tiny_run / "out" / "onnx" / "reader-fp32.onnx"),
                                providers=["CPUExecutionProvider"])
    q = W.question_ids("What is the population of Town00?")
    encs = W.encode(["Town00 has a population of 1000 people.", "Fishing is the industry."])
    pairs = [W.pair(q, e, W.window_around(e, 0, 5, W.budget_for(q))) for e in encs]
    ids, mask, types = W.batch(pairs, [len(q)] * 2)
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(ids), torch.from_numpy(mask),
                                         torch.from_numpy(types))]
    got = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


def test_a_damaged_model_file_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from rag.errors import ConfigError

    bad = tmp_path / "model"
    shutil.copytree(tiny_run / "model", bad)
    data = bytearray((bad / "reader-int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "reader-int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="sha256"):
        Reader(bad)
    with pytest.raises(ConfigError, match="no reader model"):
        Reader(tmp_path)


def test_a_recalibrated_card_is_a_different_reader(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    same = tmp_path / "same"
    shutil.copytree(tiny_run / "model", same)
    card = json.loads((same / "card.json").read_text())
    # key order is not calibration: the same numbers written differently, same reader
    card["calibration"] = dict(reversed(list(card["calibration"].items())))
    (same / "card.json").write_text(json.dumps(card))
    assert Reader(same).fingerprint == Reader(tiny_run / "model").fingerprint
    card["calibration"]["threshold"] += 0.01  # the same ONNX file, another operating point
    (same / "card.json").write_text(json.dumps(card))
    weights = Reader(tiny_run / "model").fingerprint.split("+")[0]
    assert Reader(same).fingerprint.split("+")[0] == weights
    assert Reader(same).fingerprint != Reader(tiny_run / "model").fingerprint


def test_a_second_leg_starts_from_the_first_and_learns_rewordings(tiny_run: Path,
                                                                  tmp_path: Path) -> None:
    from rag.serve.cli import main

    data = tiny_run / "tiny.json.gz"
    rw = tmp_path / "reworded.jsonl"  # every answerable question, reworded
    rw.write_text("".join(json.dumps({"id": f"{k}{j}a", "question": f"How many live in Town{k}{j}?"})
                          + "\n" for k in range(5) for j in range(2)))
    argv = ["train-reader", "--data", str(data), "--out", str(tmp_path / "leg2"), "--install",
            str(tmp_path / "model"), "--layers", "2", "--steps", "1", "--batch", "4",
            "--init", str(tiny_run / "out" / "checkpoint.pt"), "--reworded", str(rw),
            "--keep", "0.5", "--candidates", "4", "--read-further"]
    assert main(argv) == 0
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    cal = card["calibration"]  # a fixed k still chooses the head and features, at that k only
    assert cal["candidates"] == 4 and {r["k"] for r in cal["selection"]} == {4}
    assert {r["more_share"] for r in cal["selection"]} == {0.0, 0.1, 0.2, 0.3}
    assert {r["head"] for r in cal["selection"]} == {"relevance", "null", "both"}
    legs = card["training"]["legs"]
    assert len(legs) == 2 and "--steps 3" in legs[0]["command"] and "--init" in legs[1]["command"]
    held = card["held_out"]["int8"]
    assert held["questions"] == 4 and held["reworded"]["questions"] == 2  # its 2 answerable ones
    assert "leg 2" in (tmp_path / "model" / "README.md").read_text()
    assert main([*argv[:-7], "--reworded", str(tmp_path / "missing.jsonl")]) != 0


def test_rewordings_join_their_articles_without_changing_the_input() -> None:
    from rag.train import reworded as R

    arts = [{"title": "T", "paragraphs": [{"context": "c", "qas": [
        {"id": "a", "question": "q a", "answers": [{"text": "c", "answer_start": 0}],
         "is_impossible": False},
        {"id": "b", "question": "q b", "answers": [], "is_impossible": True}]}]}]
    out = R.add(arts, {"a": "reworded a", "b": "reworded b", "zz": "no such question"})
    qas = out[0]["paragraphs"][0]["qas"]
    assert [q["id"] for q in qas] == ["a", "rw-a", "b", "rw-b"]
    assert qas[1]["question"] == "reworded a" and qas[1]["answers"] == qas[0]["answers"]
    assert qas[3]["is_impossible"] and qas[3]["answers"] == []  # still unanswerable
    assert len(arts[0]["paragraphs"][0]["qas"]) == 2 and R.is_reworded("rw-a")


def test_short_leg_keeps_every_rewording_and_a_share_of_the_rest() -> None:
    from rag.train import pairs as P
    from rag.train import reworded as R

    paras = [{"context": f"Town{j} has {100 + j} people. It lies by river R{j}.", "qas": [
        {"id": f"q{j}", "question": f"How many people live in Town{j}?",
         "answers": [{"text": str(100 + j), "answer_start": len(f"Town{j} has ")}],
         "is_impossible": False}]} for j in range(40)]
    arts = R.add([{"title": "T", "paragraphs": paras}], {f"q{j}": f"Population of Town{j}?"
                                                        for j in range(0, 40, 4)})
    whole = P.build(arts, seed=1)
    part = P.build(arts, seed=1, keep=0.25)
    asked = {tuple(e.ids[1:1 + e.n_question].tolist()) for e in part}
    reworded = {tuple(W.question_ids(f"Population of Town{j}?").tolist()) for j in range(0, 40, 4)}
    assert reworded <= asked  # every reworded question is kept
    assert 10 + 3 <= len(asked) <= 10 + 20 and len(part) < len(whole)


def test_pairs_are_cut_to_the_length_trained_on_and_never_twice() -> None:
    from rag.train import pairs as P

    filler = " ".join(f"Clause {i} of the charter mentions harbour dues and tolls." for i in range(30))
    # the highlighter's sentence (most of the question's words) is not the answer's
    paras = [{"context": f"{filler} Town{j} has {100 + j} people. Many people live in "
                         f"Town{j}, how many is told above. {filler}", "qas": [
        {"id": f"q{j}", "question": f"How many people live in Town{j}?",
         "answers": [{"text": str(100 + j), "answer_start": len(filler) + len(f" Town{j} has ")}],
         "is_impossible": False}]} for j in range(6)]
    other = [{"context": f"Village{j} grows rye. {filler}", "qas": []} for j in range(2)]
    arts = [{"title": "T", "paragraphs": paras}, {"title": "U", "paragraphs": other}]
    for max_len in (48, 96, 160):
        got = P.build(arts, seed=1, max_len=max_len)
        assert max(len(e.ids) for e in got) == max_len  # long passages fill the pair
        for e in got:  # a positive's span points at the answer inside the pair
            if e.label:
                assert W.tokenizer().decode(e.ids[e.start:e.end + 1].tolist()).startswith("10")
        own = [e.ids.tobytes() for e in got if e.kind not in ("hard", "easy")]  # all differ
        assert len(own) == len(set(own))
        if max_len == 48:  # two short windows of one passage are two pairs
            assert any(e.kind == "highlight" for e in got)


def test_the_card_command_names_a_pair_length_other_than_the_default() -> None:
    from rag.train.pipeline import command
    from rag.train.trainer import TrainConfig

    assert "--max-len" not in command(TrainConfig())
    assert command(TrainConfig(max_len=160)).endswith(" --max-len 160")


def test_the_card_sets_the_pair_length_the_service_reads(tiny_run: Path, tmp_path: Path
                                                         ) -> None:
    import shutil

    from rag.errors import ConfigError

    assert json.loads((tiny_run / "model" / "card.json").read_text())["max_len"] == W.MAX_LEN
    text = " ".join(f"Sentence {i} of a long passage about town{i}." for i in range(40))
    question = "What is the population of Town00?"
    wide = Reader(tiny_run / "model").read(question, [(text, (0, 10))])[0]
    short = tmp_path / "short"
    shutil.copytree(tiny_run / "model", short)
    card = json.loads((short / "card.json").read_text())
    card["max_len"] = 40
    (short / "card.json").write_text(json.dumps(card))
    got = Reader(short).read(question, [(text, (0, 10))])[0]

    def tokens(window: tuple[int, int]) -> int:
        return len(W.encode([text[window[0]:window[1]]])[0].ids)

    assert tokens(got.window) == 40 - 3 - len(W.question_ids(question)) < tokens(wide.window)
    del card["max_len"]  # cards from before the field were trained on 96 tokens
    (short / "card.json").write_text(json.dumps(card))
    assert Reader(short).max_len == 96 == W.MAX_LEN
    card["max_len"] = 4096
    (short / "card.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="max_len 4096"):
        Reader(short)


def test_the_trade_off_counts_each_group_at_one_threshold() -> None:
    from rag.train.fit import trade_off

    # 100 original answerable at 1..100, 10 reworded answerable at 0.5..5, 20 SQuAD
    # unanswerable at 0.5..10, 10 off-corpus at -9..0 (confidence, higher = answerable)
    conf = np.r_[np.arange(1, 101), np.arange(1, 11) / 2, np.arange(1, 21) / 2, -np.arange(10)]
    ans = np.r_[np.ones(110, bool), np.zeros(30, bool)]
    rw = np.r_[np.zeros(100, bool), np.ones(10, bool), np.zeros(30, bool)]
    off = np.r_[np.zeros(130, bool), np.ones(10, bool)]
    got = trade_off(conf.astype(float), ans, rw, off, rates=(0.05, 0.10))
    # 5%: the threshold is 5.95 (5 of the 100 below it): 11 of 20 SQuAD, every off-corpus
    # and every reworded question fall below; 10%: 10.9: all 20
    assert got == [{"false_abstain": 0.05, "squad_caught": 0.55, "off_corpus_caught": 1.0,
                    "reworded_false_abstain": 1.0},
                   {"false_abstain": 0.10, "squad_caught": 1.0, "off_corpus_caught": 1.0,
                    "reworded_false_abstain": 1.0}]
    assert trade_off(conf, np.zeros(140, bool), rw, off) == []


def test_threshold_holds_on_original_and_reworded_questions_each() -> None:
    from rag.train.fit import group_threshold

    rng = np.random.default_rng(5)
    conf = np.r_[rng.random(900) * 0.5 + 0.5, rng.random(100) * 0.6 + 0.2, rng.random(300) * 0.5]
    ans = np.r_[np.ones(1000, bool), np.zeros(300, bool)]
    rw = np.r_[np.zeros(900, bool), np.ones(100, bool), np.zeros(300, bool)]
    t = group_threshold(conf, ans, rw, 0.04)
    assert (conf[ans & rw] < t).mean() <= 0.04 and (conf[ans & ~rw] < t).mean() <= 0.04
    assert t < threshold_for(conf, ans, 0.04)  # the pooled limit would fail the reworded ones
    assert (conf[ans & rw] < threshold_for(conf, ans, 0.04)).mean() > 0.04


def test_answerability_on_a_feature_subset_puts_zero_on_the_rest() -> None:
    from rag.train.fit import fit_answerability

    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (3000, 3))
    y = rng.random(3000) < 1 / (1 + np.exp(-(1.5 * x[:, 0] + 2.0 * x[:, 2])))
    m = fit_answerability(x, y, (0,))
    assert m.weights[1] == 0.0 and m.weights[2] == 0.0 and m.weights[0] > 0.5
    assert fit_answerability(x, y, (0, 1, 2)).weights[2] > 1.0


# ---------------------------------------------------------------- the bundled model


def test_bundled_card_is_complete_and_calibration_increases() -> None:
    card = json.loads((bundled_dir() / "card.json").read_text())
    for key in ("base", "licence", "data", "command", "training", "sha256", "calibration",
                "held_out"):
        assert key in card
    cal = card["calibration"]
    assert cal["a"] > 0  # P rises with the logit
    p = Platt(cal["a"], cal["b"])(np.linspace(-20, 20, 200))
    assert np.all(np.diff(p) >= 0) and 0 < cal["threshold"] < 1
    assert "SQuAD" in card["licence"] and "CC BY-SA 4.0" in card["licence"]


def test_the_bundled_card_records_both_legs_and_the_reworded_limit() -> None:
    """The bundled reader (6 layers, 4 passages read): the card lists every leg that made the
    weights and the held-out figures on reworded questions its threshold was held to; the
    previous default (4 layers) still loads from its folder."""
    from rag.train.fit import ABSTAIN_SETS

    folder = bundled_dir()
    card = json.loads((folder / "card.json").read_text())
    legs = card["training"]["legs"]
    assert len(legs) == 2 and "--init" in legs[1]["command"] and "--reworded" in legs[1]["command"]
    assert card["calibration"]["abstain_features"] in ABSTAIN_SETS
    rw = card["held_out"]["int8"]["reworded"]
    assert rw["questions"] > 500 and 0 <= rw["reader"]["false_abstain_rate"] <= 0.1
    assert card["calibration"]["candidates"] == Settings().reader_candidates == 4
    r = Reader(folder)  # its files match the card's sha256
    assert r.fingerprint.startswith("rag-reader-minilm-L6@")
    assert Reader(folder.parent / "reader-L4").fingerprint.startswith("rag-reader-minilm-L4@")


def test_bundled_reader_reorders_a_hand_made_case() -> None:
    """Retrieval put the wrong passage first by a hair (a near tie, where a reader should
    decide); the reader, reading both, prefers the one that answers, puts it first and marks
    the year."""
    r = Reader()
    q = "In what year was the bridge over the Kelda river opened?"
    wrong = "The bridge over the Kelda river is 240 metres long and carries two railway tracks."
    right = "The bridge over the Kelda river was opened in 1887 by the mayor of the town."
    readings = r.read(q, [(wrong, (0, len(wrong))), (right, (0, len(right)))])
    assert readings[1].logit > readings[0].logit
    a = _passage(1, 1.0, wrong, 0)
    b = _passage(2, 0.99, right, 100)
    out = rerank([a, b], readings, r.fusion_weight, r.answer_threshold)
    assert out[0].text == right
    s, e = readings[1].answer  # type: ignore[misc]
    assert right[s:e] == "1887"


def test_the_lone_and_the_shared_sessions_give_the_same_logits() -> None:
    """A read with no other in flight runs on spinning threads, concurrent ones on sleeping
    threads: the same model, so the same numbers, and the count of reads in flight returns
    to zero (also after a failed run)."""
    r = Reader()
    q = W.question_ids("In what year was the bridge opened?")
    encs = W.encode(["The bridge was opened in 1887.", "It is 240 metres long."])
    ids, mask, types = W.batch([W.pair(q, e, W.window_around(e, 0, 5, W.budget_for(q)))
                                for e in encs], [len(q)] * 2)
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    for a, b in zip(r._alone.run(None, feed), r._session.run(None, feed)):
        np.testing.assert_array_equal(a, b)
    assert r._alone is not r._session and r._in_flight == 0
    r.logits(ids, mask, types)
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime's own error type
        r.logits(ids[:, :3], mask, types)  # shapes disagree
    assert r._in_flight == 0


def test_searcher_reads_when_asked_and_keeps_the_fast_path(real_index: Settings, real_embedder,  # type: ignore[no-untyped-def]
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.search.searcher import Searcher

    s = Searcher(real_index.model_copy(update={"read": True}), embedder=real_embedder)
    q = "What share of the world's population lives in SCO countries?"
    read = s.ask(q, 5)  # RAG_READ=1: reads by default
    fast = s.ask(q, 5, read=False)
    off = Searcher(real_index, embedder=real_embedder).ask(q, 5)  # the default: fast path
    assert read.index.reader == s.reader.fingerprint and "read" in read.timings_ms
    assert fast.index.reader is None and "read" not in fast.timings_ms
    assert [(p.file, p.start, p.end) for p in fast.passages] == \
        [(p.file, p.start, p.end) for p in off.passages]
    assert fast.confidence == off.confidence
    n = s.settings.reader_candidates
    assert all(p.read is not None for p in read.passages[:n])
    assert all(p.read is None for p in read.passages[n:])
    assert {(p.file, p.start) for p in read.passages[:n]} == \
        {(p.file, p.start) for p in fast.passages[:n]}  # the reader reorders, never replaces
    texts: dict[str, str] = {}
    for p in read.passages:
        t = texts.setdefault(p.file, file_text(real_index.corpus_dir / p.file))
        assert_exact_passage(t, p, p.file)  # with its highlight and the reader's answer
    assert read.answerable
    # this question's answers fall below the cut, so show every one to check its span too
    monkeypatch.setattr(s.reader, "answer_threshold", 0.0)
    shown = [p for p in s.ask(q, 5).passages if p.answer is not None]
    assert len(shown) == n
    for p in shown:
        assert_exact_passage(texts[p.file], p, p.file)


def test_unsure_questions_read_further_and_the_shown_list_keeps_its_length(
        real_index: Settings, real_embedder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The card's rule: when the best of the first readings scores below read_more_below,
    the next read_more passages are read too, even past the passages shown; the answer
    still shows top_k passages, every span exact."""
    from rag.search.searcher import Searcher

    s = Searcher(real_index.model_copy(update={"read": True}), embedder=real_embedder)
    s.cache.size = 0
    q = "What share of the world's population lives in SCO countries?"
    r = s.reader
    calls: list[int] = []
    real_read = r.read
    monkeypatch.setattr(r, "read", lambda q, ps: calls.append(len(ps)) or real_read(q, ps))
    monkeypatch.setattr(r, "read_more", 4)
    monkeypatch.setattr(r, "read_more_below", float("-inf"))  # never unsure
    sure = s.ask(q, 5)
    assert calls == [4] and sum(p.read is not None for p in sure.passages) == 4
    monkeypatch.setattr(r, "read_more_below", float("inf"))  # always unsure
    calls.clear()
    unsure = s.ask(q, 5)
    assert calls == [4, 4] and len(unsure.passages) == 5
    assert all(p.read is not None for p in unsure.passages)  # 8 read, the best 5 shown
    assert [p.rank for p in unsure.passages] == [1, 2, 3, 4, 5]
    calls.clear()
    assert len(s.ask(q, 2).passages) == 2 and calls == [4, 4]  # reads past a short list
    for p in unsure.passages:
        assert_exact_passage(file_text(real_index.corpus_dir / p.file), p, p.file)


def test_reading_further_in_calibration_matches_the_service_rule() -> None:
    from rag.train.fit import Read, read_further, unsure_cut

    def read(logits: list[float]) -> Read:
        a = np.array(logits)
        z = np.zeros(len(a))
        return Read(None, [], (), a, z.astype(bool), z, z.astype(bool), a, z)  # type: ignore[arg-type]

    sure, unsure = read([3.0, 1, 0, 0, 9, 9, 9, 9]), read([-4.0, -5, -6, -7, 2, 0, 0, 0])
    assert len(read_further(sure, "relevance", 4, 4, -1.0).logits) == 4
    assert len(read_further(unsure, "relevance", 4, 4, -1.0).logits) == 8
    assert len(read_further(unsure, "relevance", 4, 0, -1.0).logits) == 4  # none more
    reads = [read([float(i), -9, -9, -9, 0, 0, 0, 0]) for i in range(10)]
    assert unsure_cut(reads, "relevance", 4, 0.0) == float("-inf")
    cut = unsure_cut(reads, "relevance", 4, 0.3)
    assert sum(len(read_further(r, "relevance", 4, 4, cut).logits) == 8 for r in reads) == 3


def test_concurrent_questions_share_both_models_correctly(real_index: Settings,
                                                          real_embedder) -> None:  # type: ignore[no-untyped-def]
    """The micro-batcher (question vectors) and the reader's session under 8 threads give
    exactly the answers one thread gets."""
    from rag.evaluation.evaluate import load_gold
    from tests.conftest import DEV_GOLD, need_shared

    need_shared(DEV_GOLD)
    from rag.search.searcher import Searcher

    s = Searcher(real_index.model_copy(update={"read": True}), embedder=real_embedder)
    s.cache.size = 0
    qs = [it.question for it in load_gold(DEV_GOLD)[:24]]

    def key(a):  # type: ignore[no-untyped-def]
        return ([(p.file, p.start, p.end, p.read, p.answer and p.answer.text) for p in a.passages],
                a.answerable, a.confidence)

    want = {q: key(s.ask(q, 5)) for q in qs}
    got: dict[str, object] = {}
    errors: list[BaseException] = []

    def worker(part: list[str]) -> None:
        try:
            for q in part:
                got[q] = key(s.ask(q, 5))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(qs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and got == want
    assert s.reader._in_flight == 0


def test_passage_records_keep_their_shape() -> None:
    """The reader's fields reach the one JSON shape (API, MCP and CLI) unchanged."""
    from rag.serve.records import answer_out
    from rag.types import Answer, AnswerSpan, IndexInfo

    text = "Ann wrote it in 1900."
    read = replace(_passage(1, 1.0, text, 0), read=0.25,
                   answer=AnswerSpan(16, 20, 1, 1, "1900", score=0.75))
    a = Answer("q", "hybrid", [read, _passage(2, 0.5, "x", 30)], True, 0.5,
               IndexInfo("g-000001", "2026-01-01T00:00:00Z", "m", 2))
    for out in (answer_out(a).model_dump(), answer_out(a).model_dump(mode="json")):
        first, second = out["passages"]
        assert first["read"] == 0.25 and second["read"] is None and second["answer"] is None
        want = {"start": 16, "end": 20, "line_start": 1, "line_end": 1, "text": "1900",
                "score": 0.75}
        assert {k: first["answer"][k] for k in want} == want


def test_the_reworded_training_file_holds_training_questions_only() -> None:
    """Rewordings come from the training file: none of the validation file's questions (the
    acceptance sets are drawn from it), none of the held-back reworded set's."""
    from rag.train import pairs as P
    from rag.train import reworded as R

    from .conftest import SHARED, need_shared

    train, val = SHARED / "qa-train" / "train-v2.0-subset.json.gz", \
        SHARED / "qa-train" / "validation-v2.0-subset.json.gz"
    need_shared(train)
    need_shared(val)

    def ids(path: Path) -> dict[str, bool]:
        return {str(qa["id"]): bool(qa.get("is_impossible")) for a in P.load_squad(path)
                for p in a["paragraphs"] for qa in p["qas"]}

    rw = R.load(R.DEFAULT)
    train_ids, val_ids = ids(train), ids(val)
    assert len(rw) > 4000 and set(rw) <= set(train_ids) and not set(rw) & set(val_ids)
    assert 0.15 < np.mean([train_ids[i] for i in rw]) < 0.35  # unanswerable ones too
    held = Path(__file__).parent.parent / "eval" / "reworded-squad-val.jsonl"
    eval_questions = {json.loads(x)["question"] for x in held.read_text().splitlines()}
    assert not eval_questions & set(rw.values())


def test_the_acceptance_report_reads_the_abstain_curve_off_the_score() -> None:
    import importlib.util

    from sklearn.metrics import roc_auc_score

    spec = importlib.util.spec_from_file_location(
        "reader_acceptance", Path(__file__).parents[1] / "eval" / "reader_acceptance.py")
    assert spec is not None and spec.loader is not None
    acc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(acc)
    rng = np.random.default_rng(7)
    answerable = np.arange(400) < 300
    conf = np.where(answerable, rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 400))
    got = acc.abstain_curve(conf, answerable)
    assert got["auc"] == pytest.approx(roc_auc_score(answerable, conf))
    for rate, recall in got["recall_at_false"].items():  # the threshold that flags `rate`
        t = np.quantile(conf[answerable], float(rate))
        assert (conf[answerable] < t).mean() == pytest.approx(float(rate), abs=0.01)
        assert recall == pytest.approx((conf[~answerable] < t).mean())
    rs = list(got["recall_at_false"].values())
    assert rs == sorted(rs) and 0 < rs[0] < rs[-1] < 1  # more false abstention buys recall
    assert acc.abstain_curve(conf[answerable], answerable[answerable]) is None
