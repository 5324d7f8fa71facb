"""The reader: a small cross-encoder trained here (from the bundled MiniLM weights, on SQuAD
2.0) that reads a question and a short window of a passage together, to rerank passages, to
judge whether the corpus answers, and to point at the answer.

    windows.py      what the reader sees of a passage (the same code in training and serving)
    calibration.py  Platt scaling, reliability table, threshold (pure)
    runtime.py      the bundled ONNX model at query time, and how its readings reorder passages

Training lives in ``rag.train`` (an optional extra); the service imports only this package.
"""
