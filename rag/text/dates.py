"""A document's date, as a UTC day (``YYYY-MM-DD``), and where it came from.

In order, the first that gives a valid date wins:

    line          a leading ``date YYYY-MM-DD Title`` line (the news files' own header)
    pdf, docx     the file's metadata: PDF CreationDate (else ModDate), DOCX created
                  (else modified)
    html          a ``<meta>`` date: date, dc.date, dcterms.date, article:published_time, ...
    front-matter  Markdown front matter (``---`` block at the top): date, created, published
    mtime         the file's modification time

Times with a zone are turned into UTC before the day is taken; times without one are read
as UTC. Pure functions: the extractors (in their worker process) call the metadata ones.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

SOURCES = ("line", "pdf", "docx", "html", "front-matter", "mtime")
DATES_VERSION = 1  # manifests without "dates" >= this were built before date_source existed

_ISO = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
                  r"\s*(Z|[+-]\d{2}:?\d{2})?)?\s*$", re.IGNORECASE)
_PDF = re.compile(r"^\s*(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
                  r"\s*(Z|[+-]\d{2}'?\d{2}'?|[+-]\d{2}'?)?", re.IGNORECASE)
# <meta name=...> / <meta property=...> values that carry a document's date, best first
HTML_META = ("article:published_time", "datepublished", "citation_publication_date",
             "citation_date", "dcterms.issued", "dc.date.issued", "dcterms.date", "dc.date",
             "dcterms.created", "dc.date.created", "date", "pubdate", "publish_date",
             "publishdate", "og:published_time", "article:modified_time", "dcterms.modified",
             "last-modified")
FRONT_KEYS = ("date", "published", "created", "updated", "lastmod")


def _day(y: int, mo: int, d: int, hh: int = 0, mi: int = 0, ss: int = 0,
         offset: timedelta | None = None) -> str | None:
    """The UTC day of a local time with a UTC offset (None: UTC), or None if invalid."""
    try:
        t = datetime(y, mo, d, hh, mi, min(ss, 59), tzinfo=timezone(offset or timedelta(0)))
    except ValueError:
        return None
    return t.astimezone(timezone.utc).date().isoformat()


def _offset(zone: str | None) -> timedelta | None:
    if not zone or zone.upper() == "Z":
        return None
    digits = re.sub(r"[^0-9]", "", zone)
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(zone)
    sign = -1 if zone.startswith("-") else 1
    return sign * timedelta(hours=hours, minutes=minutes)


def iso_day(value: Any) -> str | None:
    """The UTC day of an ISO 8601 date or date-time string (or a datetime/date), else None."""
    if isinstance(value, datetime):
        t = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return t.astimezone(timezone.utc).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        return None
    m = _ISO.match(value.strip().strip("'\""))
    if not m:
        return None
    return _groups_day(m.groups())


def _groups_day(groups: tuple[str | None, ...]) -> str | None:
    """The UTC day of (year, month, day, hour, minute, second, zone) as a regex matched them
    (a missing month or day is 1, a missing time 0); None for a zone that cannot be."""
    y, mo, d, hh, mi, ss, zone = groups
    try:
        off = _offset(zone)
    except ValueError:
        return None
    return _day(int(y or 0), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0),
                int(ss or 0), off)


def pdf_day(value: str | None) -> str | None:
    """The UTC day of a PDF date string (``D:YYYYMMDDHHmmSSOHH'mm'``), else None."""
    if not value:
        return None
    m = _PDF.match(value)
    if not m or m.group(1) is None:
        return None
    return _groups_day(m.groups())


def pdf_metadata_day(meta: dict[str, Any]) -> str | None:
    """The day of a PDF's metadata dictionary: CreationDate, else ModDate."""
    for key in ("CreationDate", "ModDate"):
        got = pdf_day(meta.get(key))
        if got:
            return got
    return None


def html_meta_day(metas: list[tuple[str, str]]) -> str | None:
    """The day of the best-ranked ``<meta>`` date among (name or property, content) pairs."""
    found: dict[str, str] = {}
    for name, content in metas:
        key = name.strip().lower()
        if key in HTML_META and key not in found:
            day = iso_day(content)
            if day:
                found[key] = day
    return next((found[k] for k in HTML_META if k in found), None)


def front_matter_day(text: str) -> str | None:
    """The day in a Markdown file's front matter (``---`` block opening the file), else None."""
    body = text.lstrip("\ufeff")
    if not body.startswith("---"):
        return None
    lines = body.split("\n", 200)
    if lines[0].strip() != "---":
        return None
    found: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() in ("---", "..."):
            return next((found[k] for k in FRONT_KEYS if k in found), None)
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in FRONT_KEYS and key not in found:
            day = iso_day(value.split("#", 1)[0])
            if day:
                found[key] = day
    return None  # no closing line: not front matter


def mtime_day(mtime_ns: int) -> str:
    """The UTC day of a file's modification time."""
    return datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc).date().isoformat()


def document_date(line_date: str | None, meta_date: str | None, meta_source: str | None,
                  text: str, suffix: str, mtime_ns: int | None) -> tuple[str | None, str | None]:
    """(day, source) by the precedence above: the leading line, the file's metadata (PDF,
    DOCX, HTML meta: ``meta_source``), Markdown front matter, else the modification time."""
    if line_date and iso_day(line_date):
        return line_date, "line"
    if meta_date and meta_source:
        return meta_date, meta_source
    if suffix.lower() in (".md", ".markdown"):
        day = front_matter_day(text)
        if day:
            return day, "front-matter"
    if mtime_ns is not None:
        return mtime_day(mtime_ns), "mtime"
    return None, None


def parse_day(value: str, what: str) -> date:
    """An inclusive ISO day from a request (``what`` names the field in the error)."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}={value!r} is not an ISO date; use YYYY-MM-DD") from None


def day_number(day: str | None) -> int:
    """Days since 1970-01-01 of a stored day (a large negative number for none), for masks."""
    if not day:
        return NO_DAY
    try:
        return (date.fromisoformat(day) - EPOCH).days
    except ValueError:
        return NO_DAY


EPOCH = date(1970, 1, 1)
NO_DAY = -10**9
