"""The project's exceptions, one small tree.

    RagError                   anything this package raises on purpose
    ├── ConfigError            a setting or argument is wrong (bad value, missing folder)
    ├── CorpusError            the corpus cannot be read as a whole (missing, empty)
    ├── IndexMissingError      no generation has been published yet
    ├── IndexCorruptError      a generation fails validation (hash, size, counts)
    ├── IndexMismatchError     the index was built with another model or dimension
    ├── IndexLockedError       another `rag index` holds the lock
    ├── DocumentNotFoundError  a document path is outside the corpus or unknown (or one an
    │                          API key may not read: the same error, on purpose)
    ├── KeysFileError          the API keys file is damaged, unreadable or readable by others
    └── OverloadedError        the service has more work queued than it accepts

Every message names the bad value and how to fix it.
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(RagError):
    """A setting or argument has a value that cannot work."""


class CorpusError(RagError):
    """The corpus folder is missing, empty or holds no readable document."""


class IndexMissingError(RagError):
    """No index generation has been published in the index folder."""


class IndexCorruptError(RagError):
    """A generation's files do not match its manifest."""


class IndexMismatchError(RagError):
    """The index was built with another model, dimension or format."""


class IndexLockedError(RagError):
    """Another indexing run holds the index lock."""


class DocumentNotFoundError(RagError):
    """A requested document is not in the corpus (or lies outside it)."""


class KeysFileError(RagError):
    """The keys file exists but cannot be trusted (damaged, unreadable, wrong mode)."""


class OverloadedError(RagError):
    """More queries are waiting than the service accepts."""
