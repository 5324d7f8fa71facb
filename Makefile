# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: setup system index serve test soak fuzz bench eval calibrate train-reader clean

# torch first, pinned: pip takes the local CPU build; any other torch request would pull
# a multi-GB CUDA build. Then the project with its test and Ray extras.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,ray,train]'
	touch $(STAMP)

# Tesseract reads scanned PDF pages (README "OCR"): a Debian package, like Chromium in .ci/run.
# Without it (no root, no apt) everything else works; scanned pages are left out with the reason.
system:
	@tesseract --list-langs 2>/dev/null | grep -qx eng || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			tesseract-ocr tesseract-ocr-eng >/dev/null) || \
		echo "tesseract not installed: scanned PDF pages will not be OCRed"

setup: $(STAMP) system

index: setup
	$(BIN)/rag index

serve: setup
	$(BIN)/rag serve --host $(HOST) --port $(PORT)

# Static checks first (versions pinned in the test extra, configured in pyproject.toml).
test: setup
	$(BIN)/ruff check rag tests bench eval
	$(BIN)/mypy rag
	$(BIN)/python -m pytest -q -ra -m "not soak"

# Memory over 100 watch-driven reloads (tests/test_reload_memory.py); .ci/run runs it after
# `make test`
soak: setup
	$(BIN)/python -m pytest -q -ra -m soak tests

# Reports: eval/report-dev.html and eval/report-own.html (and their JSON). The previous
# run's JSON, when there is one, is the baseline the new report compares against.
# SERVE_URL=http://127.0.0.1:8000 links every span in the reports to a running `rag serve`.
eval: index
	$(call eval_report,dev,../shared/gold/dev.jsonl)
	$(call eval_report,own,eval/gold.jsonl)

define eval_report
	@if [ -f eval/report-$(1).json ]; then \
		mv eval/report-$(1).json eval/report-$(1).previous.json; fi
	$(BIN)/rag eval $(2) --mode all --json eval/report-$(1).json --html eval/report-$(1).html \
		$$(test -f eval/report-$(1).previous.json && echo --baseline eval/report-$(1).previous.json) \
		$(if $(SERVE_URL),--serve-url $(SERVE_URL))
endef

# Re-fit the abstention model (rag/models/abstain.json) from the code as it is: deterministic
# (same index, same features, plain gradient descent from zeros). Fitted on eval/gold.jsonl,
# so abstention figures on that set are in-sample; dev and SQuAD validation are held out.
calibrate: index
	$(BIN)/python eval/calibrate.py eval/gold.jsonl

# Train the reader from the bundled MiniLM on ../shared/qa-train (about 2 h 40 min on 2
# quiet cores with AMX; resumable: run it again after an interruption), export it to ONNX
# int8, calibrate it on held-out training articles and install it with its card into
# rag/models/reader. Two legs, as the shipped 6-layer model was made (its card lists both):
# 2 epochs on SQuAD 2.0 from MiniLM's weights, then 1 epoch at a lower rate on the
# hand-reworded questions with 30% of the original ones, calibrated for the 4 passages the
# latency budget allows. Each leg resumes from its own checkpoints.
READER_OUT ?= train/out/reader
train-reader: setup
	$(BIN)/rag train-reader --out $(READER_OUT) --layers 6 --epochs 2 $(TRAIN_ARGS)
	$(BIN)/rag train-reader --out $(READER_OUT)-leg2 --layers 6 --epochs 1 --lr 5e-5 \
	  --init $(READER_OUT)/checkpoint.pt --reworded rag/train/data/reworded-train.jsonl \
	  --keep 0.3 --candidates 4 --install rag/models/reader $(TRAIN_ARGS)

fuzz: setup
	RAG_FUZZ_LONG=1 $(BIN)/python -m pytest -q -ra -m fuzz tests

GRANTS_N ?= 1000000
bench: setup
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || \
		echo "wrk not installed: HTTP figures come from the Python client only"
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/ocr_bench.py
	$(BIN)/python bench/watch_bench.py  # /ask p50 idle and while a 200-file burst is indexed
	$(BIN)/python bench/grants.py section --n $(GRANTS_N) --json bench/out/grants.json  # keys at 1M chunks
	$(BIN)/python bench/reader_steps.py --serve-only --json bench/out/reader_serve.json  # the reader's forward pass: 2/4/6 layers, int8 vs fp32

clean:
	rm -rf $(VENV) index/CURRENT index/generations index/.lock
