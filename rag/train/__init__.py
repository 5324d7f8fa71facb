"""Training code for the project's own models (the ``train`` extra: torch, transformers).
Never imported when serving.

    pairs.py    SQuAD 2.0 -> labelled reader windows (our chunker, our BM25)
    reader.py   fine-tune the reader from the bundled MiniLM weights (checkpoints, resumable)
    export.py   checkpoint -> ONNX float32 -> int8
    fit.py      calibration and operating point on held-out training articles, through the
                real query pipeline; writes the model card
"""
