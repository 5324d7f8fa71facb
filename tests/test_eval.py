"""`rag eval`: metrics as pure functions, and the quality gate CI runs on both gold sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.evaluation.evaluate import (Evidence, check_thresholds, covered, first_hit_rank, load_gold,
                                     make_gates, mrr, ndcg, recall_at)

from .conftest import CORPUS, DEV_GOLD, OWN_GOLD, ROOT, need_shared
from .gates import GATES
from .oracles import assert_exact, file_text


def test_covered_counts_the_union_once() -> None:
    assert covered([(0, 10), (5, 15)], 0, 20) == 15
    assert covered([(30, 40)], 0, 20) == 0
    assert covered([(0, 100)], 10, 20) == 10


def test_first_hit_needs_half_of_the_evidence() -> None:
    ev = [Evidence("a.txt", 100, 200)]
    assert first_hit_rank([("a.txt", 0, 149)], ev) is None  # 49 of 100 chars
    assert first_hit_rank([("a.txt", 0, 150)], ev) == 1
    # two passages whose union covers half: the hit is at the second
    assert first_hit_rank([("a.txt", 100, 130), ("b.txt", 0, 99), ("a.txt", 130, 160)], ev) == 3
    assert first_hit_rank([("b.txt", 100, 200)], ev) is None


def test_rank_metrics_by_hand() -> None:
    ranks = [1, 2, None, 4]
    assert recall_at(ranks, 1) == 0.25
    assert recall_at(ranks, 3) == 0.5
    assert mrr(ranks) == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert ndcg([1, 3]) == pytest.approx((1 + 0.5) / 2)


def test_gates_hold_at_their_value_and_fail_past_it() -> None:
    gates = make_gates(min_mrr=0.9, min_abstain_recall=0.4, max_false_abstain=0.04)
    assert [g.metric for g in gates] == ["mrr@10", "abstain_recall", "false_abstain_rate"]
    at = {"mrr@10": 0.9, "abstain_recall": 0.4, "false_abstain_rate": 0.04, "recall@5": 0.0}
    assert check_thresholds(at, gates) == []  # recall@5 is not gated
    past = {**at, "abstain_recall": 0.2, "false_abstain_rate": 0.0741}
    assert check_thresholds(past, gates) == ["abstain_recall 0.200 < 0.4",
                                             "false_abstain_rate 0.074 > 0.04"]


def test_gold_quotes_are_verbatim() -> None:
    """Every evidence quote of both gold sets stands at its offsets and lines."""
    need_shared(DEV_GOLD)
    for path in (OWN_GOLD, DEV_GOLD):
        for line in path.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            for e in d["evidence"]:
                # lines where the record carries them (both or neither)
                assert_exact(file_text(ROOT / e["file"]), e, d["id"])


def test_own_gold_shape() -> None:
    items = load_gold(OWN_GOLD)
    assert len(items) >= 80
    assert sum(not i.answerable for i in items) >= 15
    assert {e.file for i in items for e in i.evidence} == {p.name for p in CORPUS.iterdir()}
    need_shared(DEV_GOLD)
    dev = {i.question for i in load_gold(DEV_GOLD)}
    assert not dev & {i.question for i in items}


def printed_table(stdout: str) -> dict[str, dict[str, float]]:
    """The metric table `rag eval` printed: mode -> metric -> figure (3 decimals)."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    modes = lines[head].split()[1:]
    table: dict[str, dict[str, float]] = {m: {} for m in modes}
    for line in lines[head + 1:]:
        if not line.strip():
            break
        name, *cells = line.split()
        for m, cell in zip(modes, cells, strict=True):
            table[m][name] = float(cell)
    return table


GATED = {"--min-recall-at-5": ("recall@5", ">="), "--min-mrr": ("mrr@10", ">="),
         "--min-abstain-recall": ("abstain_recall", ">="),
         "--max-false-abstain": ("false_abstain_rate", "<=")}


@pytest.mark.parametrize("gold,gates", [(DEV_GOLD, GATES["dev"]), (OWN_GOLD, GATES["own"])],
                         ids=["dev", "own"])
def test_quality_gate(real_index, gold: Path, gates: dict[str, float], tmp_path: Path) -> None:
    """The CLI gate CI relies on: exits 0 above the thresholds, writes the JSON report
    with the figures it printed and the gates it applied."""
    need_shared(gold)
    out = tmp_path / "eval.json"
    run = subprocess.run(
        [sys.executable, "-m", "rag.serve.cli", "eval", str(gold), "--mode", "all",
         "--corpus", str(real_index.corpus_dir), "--index", str(real_index.index_dir),
         "--json", str(out), *(str(x) for kv in gates.items() for x in kv)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    assert set(data["modes"]) == {"hybrid", "dense", "lexical", "reader"}
    printed = printed_table(run.stdout)
    for mode, res in data["modes"].items():
        assert printed[mode] == {k: round(v, 3) for k, v in res["metrics"].items()}, mode
    hybrid = data["modes"]["hybrid"]["metrics"]
    assert hybrid["citation_exact_rate"] == 1.0
    # hybrid is at least as good as either part on MRR
    assert hybrid["mrr@10"] >= max(data["modes"][m]["metrics"]["mrr@10"]
                                   for m in ("dense", "lexical")) - 1e-9
    # the reader reorders only the top 4 of hybrid's list, so recall@5 cannot move
    reader = data["modes"]["reader"]["metrics"]
    assert reader["recall@5"] == hybrid["recall@5"] and reader["citation_exact_rate"] == 1.0
    # the report names the gates it applied, to the service's default (hybrid), and every
    # one holds there
    assert data["gates"]["mode"] == "hybrid"
    assert data["gates"]["applied"] == [
        {"metric": GATED[flag][0], "op": GATED[flag][1], "value": v} for flag, v in gates.items()]
    assert data["gates"]["failed"] == []
    for flag, v in gates.items():
        metric, op = GATED[flag]
        assert hybrid[metric] >= v if op == ">=" else hybrid[metric] <= v, flag


def test_gate_fails_below_threshold(real_index, tmp_path: Path) -> None:
    """Each gate fails alone on a figure beyond it; the gated mode is the one that ran."""
    out = tmp_path / "eval.json"
    run = subprocess.run(
        [sys.executable, "-m", "rag.serve.cli", "eval", str(OWN_GOLD), "--mode", "lexical",
         "--corpus", str(real_index.corpus_dir), "--index", str(real_index.index_dir),
         "--json", str(out), "--min-mrr", "0.9999", "--min-recall-at-5", "0.5",
         "--min-abstain-recall", "0.99", "--max-false-abstain", "0.0"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 1
    data = json.loads(out.read_text())
    lexical = data["modes"]["lexical"]["metrics"]
    assert lexical["false_abstain_rate"] > 0.0 and lexical["abstain_recall"] < 0.99
    assert data["gates"]["mode"] == "lexical"
    assert data["gates"]["failed"] == [
        f"mrr@10 {lexical['mrr@10']:.3f} < 0.9999",
        f"abstain_recall {lexical['abstain_recall']:.3f} < 0.99",
        f"false_abstain_rate {lexical['false_abstain_rate']:.3f} > 0.0"]
    assert [line for line in run.stderr.splitlines() if line.startswith("FAILED")] == [
        f"FAILED threshold: {f}" for f in data["gates"]["failed"]]


SQUAD = {"version": "v2.0", "data": [
    {"title": "Tea Ceremony", "paragraphs": [
        {"context": "The tea ceremony began in China. It spread to Japan in the 9th century.",
         "qas": [{"id": "q1", "question": "Where did the tea ceremony begin?",
                  "answers": [{"text": "China", "answer_start": 26}], "is_impossible": False},
                 {"id": "q2", "question": "Who invented green tea?", "answers": [],
                  "is_impossible": True}]},
        {"context": "Matcha is powdered green tea.",
         "qas": [{"id": "q3", "question": "What is matcha?",
                  "answers": [{"text": "powdered green tea", "answer_start": 10},
                              {"text": "powdered green tea", "answer_start": 10}]}]}]},
    {"title": "Silk/Road?", "paragraphs": [
        {"context": "Caravans crossed deserts.\nThey carried silk.",
         "qas": [{"id": "q4", "question": "What did they carry?",
                  "answers": [{"text": "silk", "answer_start": 39}]},
                 {"id": "q5", "question": "Bad offsets?",
                  "answers": [{"text": "camels", "answer_start": 3}]}]}]}]}


def test_convert_squad_writes_a_corpus_and_exact_gold(tmp_path: Path) -> None:
    src = tmp_path / "squad.json"
    src.write_text(json.dumps(SQUAD))
    run = subprocess.run([sys.executable, "-m", "rag.serve.cli", "convert-squad", str(src),
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "4 gold items (1 unanswerable, 1 skipped)" in run.stdout
    files = sorted(p.name for p in (tmp_path / "out" / "corpus").iterdir())
    assert files == ["0001-tea-ceremony.txt", "0002-silk-road.txt"]
    tea = (tmp_path / "out" / "corpus" / files[0]).read_text()
    assert tea == ("The tea ceremony began in China. It spread to Japan in the 9th century."
                   "\n\nMatcha is powdered green tea.")
    items = load_gold(tmp_path / "out" / "gold.jsonl")
    assert [i.id for i in items] == ["q1", "q2", "q3", "q4"]
    for raw in (tmp_path / "out" / "gold.jsonl").read_text().splitlines():
        d = json.loads(raw)
        for e in d["evidence"]:
            assert e["line_start"] is not None
            assert_exact(file_text(tmp_path / "out" / e["file"]), e, d["id"])
    assert len(items[2].evidence) == 1  # duplicate answers collapse
    assert not items[1].answerable and items[1].evidence == ()


def test_convert_squad_rejects_other_json(tmp_path: Path) -> None:
    src = tmp_path / "x.json"
    src.write_text('{"rows": []}')
    run = subprocess.run([sys.executable, "-m", "rag.serve.cli", "convert-squad", str(src),
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert run.returncode == 2
    assert "is not a SQuAD" in run.stderr
