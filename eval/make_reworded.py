"""Build eval/reworded-squad-val.jsonl: answerable SQuAD 2.0 validation questions reworded BY HAND
away from their passage, for issue 23's acceptance point "false abstention <= 5% on at least 50
answerable questions phrased away from the text". Report-only: never used for any choice.

    /work/main/.venv/bin/rag convert-squad VALIDATION.json /work/eval-data/squad-val
    /work/main/.venv/bin/python eval/make_reworded.py /work/eval-data/squad-val/gold.jsonl \
        [--originals /tmp/original-squad-val.jsonl]

Selection (deterministic): the answerable items of convert-squad's gold.jsonl in file order,
position k*STRIDE for k = 0..74; where that item is in SKIP (broken source item, reason given),
the next answerable item not in SKIP is taken. Every question in REWORDED was written by hand;
`evidence`, `answer` and `answerable` are copied unchanged from the source item, `id` is
"rw-" + source id, `source_question` keeps the original (the gold loader ignores extra fields).
`--originals` writes the same items with their original questions (ids unchanged, "orig-"
prefix), to show on the same evidence how much the rewording costs the retriever.

Overlap (printed, and quoted in eval/README-reworded.md): for each question, the share of its
distinct content words (\\w+ lowercased, minus rag's BM25 stop words and one-letter tokens) that
occur in the evidence sentence (the sentence(s) of the paragraph holding the evidence span);
also with rag's stemmer, which is what BM25 sees.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rag.indexing.lexical import STOPWORDS, tokenize

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "reworded-squad-val.jsonl"
STRIDE = 67
COUNT = 75

# Source items that cannot be reworded honestly; the next answerable item is taken instead.
SKIP = {
    "sqexp11-0f97143603327914": "evidence is the paragraph's first 'Ann Arbor', not in the "
                                "sentence that answers",
    "5727ac434b864d1900163a11": "evidence is the paragraph's first 'Paris', five sentences "
                                "before the one that answers",
    "sqexp11-0f0d4c226193447e": "evidence is the paragraph's first '1889', not in the sentence "
                                "that answers",
    "sqexp11-793f6c9185c16e05": "several answers fit (paper documents, microfilm, still "
                                "pictures)",
    "sqexp11-b8a9e7d38a73134d": "a yes/no question with a span answer",
    "sqexp11-becd58ea20526d5a": "'where else' has several answers (also suburban communities)",
    "56f97c189b226e1400dd149d": "evidence is the paragraph's first 'Kuaiji', not in the "
                                "sentence that answers",
}

# Source id -> the hand-written question (same answer, away from the passage's wording).
REWORDED = {
    "5727547d5951b619008f885f":
        "Which airfield lies just south of the city that sits on the Huron River about 35 miles "
        "west of Detroit?",
    "sqexp11-b09843c18618b999":
        "What year was the earliest classical dance troupe in Michigan to receive a charter "
        "founded?",
    "sqexp11-9c4f7619396576b4":
        "What did 2013 research on the maternal-line genes of the Ashkenazim conclude about the "
        "theory that they descend from the Khazars?",
    "sqexp11-f01614c4ada82d3a":
        "Which compounds do certain prokaryotes stockpile within the cell as food reserves?",
    "56bf9b57a10cfb14005511b2":
        "Which song, on which she guested for another artist, gave Beyoncé her sixth number-one "
        "on the US pop airplay chart?",
    "56bfae97a10cfb1400551235":
        "Which cause did Beyoncé come out in favour of in spring 2013, following the high "
        "court's hearing on a California ballot measure?",
    "56becb8d3aeaaa14008c9496":
        "Across the globe, roughly how many units has Beyoncé shifted on her own, not counting "
        "her girl group's sales?",
    "56bfdbf2a10cfb1400551344":
        "How many variants make up Beyoncé's Heat scent family?",
    "56bfb789a10cfb140055126f":
        "Setting aside the other influences she blends in, what genre does Beyoncé mainly work "
        "in?",
    "56d43da72ccc5a1400d830c0":
        "Who is Beyoncé's husband?",
    "56bed38e3aeaaa14008c94db":
        "In which year did Beyoncé team up with her mom to debut a youth fashion brand timed for "
        "the return to classes?",
    "56d4d18d2ccc5a1400d8325c":
        "What did people look up online more than anything else at the close of August 2011?",
    "56d4f5d32ccc5a1400d83383":
        "Which market was the joint venture between Beyoncé's management firm and a London "
        "fashion chain meant to enter?",
    "56d4cde92ccc5a1400d83238":
        "Which track from Beyoncé's surprise self-titled 2013 record had her spouse as guest?",
    "56d4e0532ccc5a1400d832d5":
        "Which of her tracks did Beyoncé perform in 2006 while dressed as a tribute to an earlier "
        "female singer who inspired her second album?",
    "sqexp11-46466bd889b665bf":
        "Under apartheid, which racial category was persecuted yet enjoyed somewhat better "
        "socioeconomic conditions than Black people?",
    "sqexp11-eacc051d028dee77":
        "When did Barbados's sugar-harvest celebration start?",
    "sqexp11-a81706fabcf19eb2":
        "Which region gave the Catalan tongue its name?",
    "sqexp11-f702d3e8d7155d37":
        "Which author produced the celebrated chivalric romance from 1490?",
    "sqexp11-970dddad6b5f6109":
        "Which ballpark staged the opening pair of contests in the Cubs' 1984 playoff meeting "
        "with San Diego?",
    "57270465f1498d1400e8f24d":
        "Who, among those who started Comcast, is the father of its present chief?",
    "sqexp11-bb45c26423d9fc6f":
        "Apart from an apology and money back, what did the cable company offer the couple whose "
        "name on the bill had been changed to an insult?",
    "56dc784714d3a41400c268b7":
        "In Germany, which type of secondary school has the worst-performing pupils, even below "
        "those at comprehensives?",
    "sqexp11-10618d73f067e577":
        "Which two fields did the movement of Picasso and Braque help connect in the first "
        "decades of the 1900s?",
    "sqexp11-3bbdc92f9673a52b":
        "Which art merchant's patronage brought Cubism back to the forefront once the 1914-18 "
        "conflict ended?",
    "sqexp11-62b0fbdd7456cfad":
        "Who was Ike's boss when he served as the top staff officer of the Ninth Corps?",
    "sqexp11-4c18dfd4b2ff5496":
        "Which sitting head of state urged Ike in 1951 to seek the White House as a Democrat?",
    "572a441b6aef0514001553ec":
        "When did the Reich absorb the Zichenau administrative district into East Prussia?",
    "sqexp11-f8423824bae1a7a0":
        "Which brain network, once its nerve pathways were charted, gave rise to the biological "
        "account of how people feel?",
    "570a775d4103511400d59742":
        "Which field of scholarship looks at how feelings figure in thought, mental illness and "
        "the workings of the nervous system?",
    "570a5b9a4103511400d59650":
        "What is the title of Laird's work defending the perceptual theory of emotion?",
    "572ec6bccb0c0d14000f1549":
        "According to critics of the US wildlife-protection law, what share of protected "
        "organisms have recovered enough to be removed from the register?",
    "sqexp11-233d722840fda1c4":
        "Which banker and which clan paid for Edison's illumination trials?",
    "sqexp11-7b22d897870f92fa":
        "What does the well-known riddle about a boulder and unlimited might ask about the "
        "deity?",
    "57283f072ca10214002da170":
        "To what do followers of Islam liken the Christian belief in a three-person God?",
    "sqexp11-63b599d47d56947d":
        "Which church's teaching says the deity has no parts whatsoever and is not bound by the "
        "passage of time against its will?",
    "sqexp11-7ebdb8fd097c3be6":
        "In the Indian state that bans polythene and tobacco products, where do nine in ten "
        "residents live?",
    "57096b25200fba1400367f9f":
        "Which district of Himachal Pradesh grows the most vegetables?",
    "sqexp11-58c2a30f2fa32210":
        "What notion holds that a person's sense of self is assembled from several parts that "
        "people recognise and make sense of?",
    "5727657f708984140094dcf8":
        "Which languages did Boccaccio and the poet Dante use for their prolific output?",
    "57273c11dd62a815002e99df":
        "Between which years was the Church divided under competing pontiffs chosen in separate "
        "cities?",
    "sqexp11-bf8ad0e018bd7de5":
        "How many metro stops are along Manhattan's 14th Street?",
    "56f959f79e9bad19000a0867":
        "Which branches comprise Britain's military?",
    "sqexp11-313a1c2eb05e66db":
        "Where is Britain's defence department based?",
    "sqexp11-b86405483c8593d3":
        "Into what units does the US national archive sort its collections by originating "
        "agency?",
    "sqexp11-cd7fbab64d1ed503":
        "When did the first African communications satellite lift off?",
    "sqexp11-13ca8774518b002b":
        "In Canada, how do the laws on charitable and voluntary bodies compare with those for "
        "businesses?",
    "sqexp11-a4d15a95d1692e76":
        "What money problem is especially common in not-for-profit groups, since their staff do "
        "not answer to owners?",
    "sqexp11-a33aa9d644fd6162":
        "For which span of years was the Crimean conflict waged?",
    "56e7621400c9c71400d7706b":
        "What is paper called once it weighs more than 160 grams per square metre?",
    "56e74b6037bdd419002c3e21":
        "What treatment alters the raw strands used to make sheets of paper?",
    "572a1b551d04691400779793":
        "According to Leibniz, spatial relations hold between what kind of things?",
    "57284a61ff5b5019007da110":
        "What rating did TechRadar hand Sony's first thinner redesign of the console?",
    "572823083acd2414000df56b":
        "Along with Picasa, which social network could PS3 owners share pictures on after a "
        "firmware update?",
    "57284cdb4b864d19001648f9":
        "Which part of the smallest PS3 redesign reminded a tech site's reviewer of an old "
        "card-imprinting machine?",
    "sqexp11-98d83c542deb9782":
        "In a frequent kind of theft of public funds by officeholders, for what sort of purposes "
        "are the state's assets diverted?",
    "sqexp11-3601fee5e1d86128":
        "From what field did a lot of the musicians in the movement after punk come?",
    "572f5b9da23a5019007fc591":
        "Which UK groups were the first to be given the label for the movement that came after "
        "punk?",
    "sqexp11-2290fd9922e7fe0d":
        "What did the groups chase instead, bringing the first wave of the genre that followed "
        "punk to an end?",
    "sqexp11-09d9766646deac0f":
        "Which song was the biggest success on the record Queen put out in 1976?",
    "5726bb4add62a815002e8e88":
        "How many acts of violence did law enforcement in Raleigh record in the year 2010?",
    "5726ac58708984140094cd80":
        "In which conflict was Raleigh spared from major fighting, being taken only near its end?",
    "5726b79bdd62a815002e8deb":
        "Which venue presents the top-billed performers during Raleigh's annual state fair?",
    "sqexp11-62a717836190a43a":
        "Which migrating groups did a Russian biochemist credit with adding to the Asian "
        "maternal lineages found in non-Russian Slavs?",
    "sqexp11-83421f72c72a40ce":
        "What seemingly gave rise to the medieval Greek term for a bondsman, a remote source of "
        "the ethnonym Slav?",
    "sqexp11-527b3e3801c4dadf":
        "How did China's rulers describe the 1914 Simla pact between Tibet and Britain?",
    "sqexp11-bc83eef8c0311477":
        "Which territory did the 7th-century founder of the Tibetan Empire bring together?",
    "570e45630b85d914000d7dd4":
        "What was Australia's anticipated output of the radioactive metal in 2009, in metric "
        "tons?",
    "570e357f0b85d914000d7d67":
        "In what sort of liquid does the stability diagram of uranium in its +6 state look very "
        "different from that in pure water?",
    "570e52840b85d914000d7e2b":
        "By what multiple does uranium outnumber silver in the planet's outer rocky layer?",
    "sqexp11-27903fddf9f3d6d1":
        "Which two jobs did McLeod have at the St. Louis school?",
    "sqexp11-10b1d1312a28d6e3":
        "What subjects do the celebrated academics at the Brown School focus on?",
    "56f92c369b226e1400dd125e":
        "How was Zhejiang's name spelled in the old Western transcription?",
    "sqexp11-5b90137ffe4bf633":
        "Which ruling power did the revolt launched from the Zhejiang area try to overthrow, "
        "briefly reviving Chu?",
    "sqexp11-d9d11962d1be2bbf":
        "Apart from Christian places of worship, what else was torn down under Zhejiang's 2014 "
        "campaign to regulate religious sites?",
}

# A sentence ends at . ! ? (maybe followed by a closing quote or bracket), then space, then
# something that starts a sentence; a lone capital before the point is an initial ("J.P.").
_BOUNDARY = re.compile(r"[.!?][\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"\w+", re.UNICODE)


def select(answerable: list[dict]) -> list[dict]:
    """The stride positions, each moved past skipped source items to the next usable one."""
    picks, used = [], set()
    for k in range(COUNT):
        i = k * STRIDE
        while answerable[i]["id"] in SKIP or answerable[i]["id"] in used:
            i += 1
        picks.append(answerable[i])
        used.add(answerable[i]["id"])
    return picks


def evidence_sentence(text: str, start: int, end: int) -> str:
    """The sentence(s) of the evidence's paragraph (line) that hold text[start:end]."""
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    para = text[ls:len(text) if le < 0 else le]
    bounds = [0]
    for m in _BOUNDARY.finditer(para):
        p = m.start()
        if p >= 1 and para[p - 1].isupper() and (p < 2 or not para[p - 2].isalpha()):
            continue  # an initial
        bounds.append(m.end())
    s, e = start - ls, end - ls
    first = max(b for b in bounds if b <= s)
    after = [b for b in bounds if b >= e]
    return para[first:min(after) if after else len(para)].strip()


def content_words(text: str) -> set[str]:
    """Distinct lower-cased words, minus BM25's stop words and one-letter tokens."""
    return {w for w in _WORD.findall(text.lower())
            if w not in STOPWORDS and not (len(w) == 1 and w.isalpha())}


def overlap(question: str, sentence: str, stem: bool = False) -> float:
    """Share of the question's content words that occur in the sentence."""
    if stem:
        q, s = set(tokenize(question)), set(tokenize(sentence))
    else:
        q, s = content_words(question), content_words(sentence)
    return len(q & s) / len(q) if q else 0.0


def main() -> None:
    """Select, check, write the reworded set (and optionally the originals); print overlaps."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gold", type=Path, help="gold.jsonl written by `rag convert-squad`")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--originals", type=Path, help="also write the original questions here")
    args = ap.parse_args()
    base = args.gold.parent
    items = [json.loads(line) for line in args.gold.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    picks = select([d for d in items if d["answerable"]])
    missing = [d["id"] for d in picks if d["id"] not in REWORDED]
    extra = set(REWORDED) - {d["id"] for d in picks}
    if missing or extra:
        raise SystemExit(f"selection and REWORDED disagree: missing {missing}, unused {extra}")
    texts: dict[str, str] = {}
    rows, orig_rows, stats = [], [], []
    for d in picks:
        ev = d["evidence"][0]
        text = texts.setdefault(ev["file"], (base / ev["file"]).read_text(encoding="utf-8"))
        for e in d["evidence"]:
            if text[e["start"]:e["end"]] != e["quote"]:
                raise SystemExit(f"{d['id']}: evidence does not resolve in {e['file']}")
        new = REWORDED[d["id"]]
        if new.strip().lower() == d["question"].strip().lower():
            raise SystemExit(f"{d['id']}: not reworded")
        rows.append({"id": "rw-" + d["id"], "question": new, "answerable": d["answerable"],
                     "answer": d["answer"], "evidence": d["evidence"],
                     "source_question": d["question"]})
        orig_rows.append({**d, "id": "orig-" + d["id"]})
        sent = evidence_sentence(text, ev["start"], ev["end"])
        stats.append((overlap(d["question"], sent), overlap(new, sent),
                      overlap(d["question"], sent, stem=True), overlap(new, sent, stem=True)))
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    if args.originals:
        args.originals.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in orig_rows),
            encoding="utf-8")
    n = len(stats)
    mean = [sum(s[i] for s in stats) / n for i in range(4)]
    files = {d["evidence"][0]["file"] for d in picks}
    print(f"{n} items over {len(files)} articles (stride {STRIDE}, {len(SKIP)} skipped) -> "
          f"{args.out}")
    print(f"content-word overlap with the evidence sentence, mean: original {mean[0]:.3f}, "
          f"reworded {mean[1]:.3f} (ratio {mean[1] / mean[0]:.2f})")
    print(f"same, stemmed as BM25 sees it: original {mean[2]:.3f}, reworded {mean[3]:.3f} "
          f"(ratio {mean[3] / mean[2]:.2f})")
    worst = sorted(zip(stats, rows), key=lambda p: -p[0][1])[:5]
    for s, r in worst:
        print(f"  highest reworded overlap {s[1]:.2f} (was {s[0]:.2f}): {r['question']}")


if __name__ == "__main__":
    main()
