"""Search: a question and a loaded generation in, an ``Answer`` out: ranked passages with their
citations, the answer sentence, abstention, and (when asked) the reader's reading.

    searcher.py  the Searcher, end to end    fusion.py  rank fusion    highlight.py  answer span
    reader/      the ONNX reader at query time (windows, calibration, runtime)
"""
