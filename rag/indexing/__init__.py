"""The index: chunks in, a crash-safe generation on disk out (segments of FAISS vectors and BM25
postings, a manifest, atomic publish, garbage collection), and its loading and validation.

    build.py  `rag index` end to end    store.py  durability, names, lock, writer, GC, validation
    segments.py  immutable segments     generation.py  the loaded generation and its row space
    dense.py lexical.py embedding.py    distributed.py  embedding on Ray (optional)
"""
