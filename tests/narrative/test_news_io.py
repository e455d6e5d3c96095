"""Reading news items (DESIGN.md schema)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.text.errors import NewsParseError
from adapters.text.news_io import parse_news_line, parse_ts, read_news


def test_timestamps_iso_and_ns() -> None:
    assert parse_ts("2013-09-02T10:00:00Z") == 1_378_116_000 * 10**9
    assert parse_ts("2013-09-02T06:00:00-04:00") == 1_378_116_000 * 10**9
    assert parse_ts("2013-09-02T10:00:00.5") == 1_378_116_000 * 10**9 + 500_000_000
    assert parse_ts(123) == 123 and parse_ts("456") == 456
    for bad in (True, -1, "yesterday", 1.5):
        with pytest.raises(NewsParseError):
            parse_ts(bad)


def test_parse_valid_line_ignores_extra_keys() -> None:
    it = parse_news_line(
        '{"id":"x","ts":5,"source":"reuters","headline":"H","body":"B","symbols":["AAPL"],"expected":"accepted"}'
    )
    assert (it.id, it.ts_event, it.source, it.headline, it.body, it.symbols) == (
        "x",
        5,
        "reuters",
        "H",
        "B",
        ("AAPL",),
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "invalid JSON"),
        ("[1,2]", "invalid JSON"),
        ('{"ts":1,"source":"s","headline":"h"}', "'id'"),
        ('{"id":"x","source":"s","headline":"h"}', "'ts'"),
        ('{"id":"x","ts":1,"source":"s","headline":"  "}', "'headline' is empty"),
        ('{"id":"x","ts":1,"source":"s","headline":7}', "must be a string"),
        ('{"id":"x","ts":1,"source":"s","headline":"h","symbols":"AAPL"}', "list of strings"),
    ],
)
def test_bad_lines_say_why(line: str, message: str) -> None:
    with pytest.raises(NewsParseError, match=message):
        parse_news_line(line)


def test_read_news_keeps_going(tmp_path: Path) -> None:
    p = tmp_path / "n.jsonl"
    p.write_bytes(
        b'{"id":"a","ts":1,"source":"s","headline":"h"}\n\n\xff\xfe garbage\n'
        b'{"id":"b","ts":2,"source":"s","headline":"h"}\n'
    )
    got = list(read_news(p))
    assert [(n, type(x).__name__) for n, _, x in got] == [
        (1, "NewsItem"),
        (3, "NewsParseError"),
        (4, "NewsItem"),
    ]
