"""Retrieval question answering over a folder of documents, with exact citations."""

from __future__ import annotations

__version__ = "0.1.0"
