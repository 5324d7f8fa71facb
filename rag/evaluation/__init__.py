"""Evaluation: a gold file and a Searcher in, metrics, per-question ranks and reports out.

    evaluate.py  gold loading, metrics, quality gates (pure)    compare.py  run vs baseline
    report.py    the HTML report (report.css)                   charts.py   inline SVG charts
"""
