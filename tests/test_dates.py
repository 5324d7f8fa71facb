"""Document dates: each source parsed to a UTC day against hand-computed answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rag.text.dates import (
    day_number,
    document_date,
    front_matter_day,
    html_meta_day,
    iso_day,
    mtime_day,
    parse_day,
    pdf_day,
    pdf_metadata_day,
)


@pytest.mark.parametrize("raw,day", [
    ("D:20240301013000+02'00'", "2024-02-29"),  # 01:30 at +02:00 is 23:30 UTC the day before
    ("D:20241231230000-05'00'", "2025-01-01"),  # 23:00 at -05:00 is 04:00 UTC the next day
    ("D:20240301", "2024-03-01"),
    ("D:202403", "2024-03-01"),
    ("20240615120000Z", "2024-06-15"),
    ("D:20240230", None),  # no 30 February
    ("junk", None),
    ("", None),
])
def test_pdf_dates(raw: str, day: str | None) -> None:
    assert pdf_day(raw) == day


def test_pdf_metadata_prefers_creation() -> None:
    assert pdf_metadata_day({"CreationDate": "D:20200101", "ModDate": "D:20210101"}) == "2020-01-01"
    assert pdf_metadata_day({"CreationDate": "bad", "ModDate": "D:20210101"}) == "2021-01-01"
    assert pdf_metadata_day({}) is None


@pytest.mark.parametrize("raw,day", [
    ("2024-03-01", "2024-03-01"),
    ("2024-03-01T23:30:00-02:00", "2024-03-02"),
    ("2024-03-01T00:30:00+01:00", "2024-02-29"),
    ("2024-03-01T12:00:00Z", "2024-03-01"),
    ("'2024-03-01 10:00'", "2024-03-01"),
    ("2024-02-30", None),
    ("March 1st", None),
])
def test_iso_dates(raw: str, day: str | None) -> None:
    assert iso_day(raw) == day


def test_iso_datetime_objects() -> None:
    t = datetime(2024, 3, 1, 23, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert iso_day(t) == "2024-03-02"
    assert iso_day(datetime(2024, 3, 1, 23, 0)) == "2024-03-01"  # naive: read as UTC


def test_html_meta_ranking() -> None:
    metas = [("date", "2020-01-01"), ("Article:Published_Time", "2021-02-03T01:00:00+03:00"),
             ("description", "2019-01-01")]
    assert html_meta_day(metas) == "2021-02-02"  # published_time ranks first, in UTC
    assert html_meta_day([("date", "soon"), ("dc.date", "2018-05-05")]) == "2018-05-05"
    assert html_meta_day([("keywords", "2018-05-05")]) is None


def test_front_matter() -> None:
    assert front_matter_day("---\ntitle: x\ndate: 2023-05-06\n---\nbody") == "2023-05-06"
    assert front_matter_day("---\ncreated: 2022-01-01\ndate: 2023-05-06  # c\n---\n") == \
        "2023-05-06"
    assert front_matter_day("---\ndate: 2023-05-06\nbody without a closing line") is None
    assert front_matter_day("# Title\ndate: 2023-05-06\n") is None


def test_precedence() -> None:
    mtime = int(datetime(2022, 7, 8, 23, 59, tzinfo=timezone.utc).timestamp() * 1e9)
    fm = "---\ndate: 2021-01-01\n---\n"
    assert document_date("2025-09-01", "2020-01-01", "pdf", fm, ".md", mtime) == \
        ("2025-09-01", "line")
    assert document_date(None, "2020-01-01", "pdf", fm, ".pdf", mtime) == ("2020-01-01", "pdf")
    assert document_date(None, None, None, fm, ".md", mtime) == ("2021-01-01", "front-matter")
    assert document_date(None, None, None, fm, ".txt", mtime) == ("2022-07-08", "mtime")
    assert mtime_day(mtime) == "2022-07-08"


def test_request_days() -> None:
    assert parse_day("2024-03-01", "date_from").isoformat() == "2024-03-01"
    with pytest.raises(ValueError, match="date_to='2024-13-01' is not an ISO date"):
        parse_day("2024-13-01", "date_to")
    assert day_number("1970-01-02") == 1
    assert day_number(None) < day_number("0001-01-01")
