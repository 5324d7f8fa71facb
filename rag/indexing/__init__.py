"""The index: chunks in, a crash-safe generation on disk out (segments of FAISS vectors and BM25
postings, a manifest, atomic publish, garbage collection), and its loading and validation.

    build.py  `rag index` end to end    store.py  durability, names, lock, GC, the loaded generation
    segments.py dense.py lexical.py embedding.py    distributed.py  embedding on Ray (optional)
"""
