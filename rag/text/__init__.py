"""Text in: files from the corpus folder (txt, md, PDF, HTML, Word) in, citable text out, with
exact offsets, line numbers, sentences and chunks (``doc.text[start:end] == chunk.text``).

    corpus.py  walk the folder, read or extract each file    chunking.py  chunks and sentences
    formats/   one module per format + the sandboxed worker   squad.py     SQuAD -> corpus + gold
"""
