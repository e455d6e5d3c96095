"""Issue 15 item 7: the report's news panel marks each item by what the checker did."""

from __future__ import annotations

from pathlib import Path

from adapters.report_news import news_figures, read_news_marks
from engine.messages import NewsRetracted, NewsVerdict, VerifiedNews, json_encoder

S = 10**9


def _v(nid: str, t: int, verdict: str, *reasons: str) -> NewsVerdict:
    return NewsVerdict(id=nid, ts_event=t * S, verdict=verdict, reasons=reasons)  # type: ignore[arg-type]


def test_news_panel_classifies_and_lists_reasons(tmp_path: Path) -> None:
    msgs = [
        _v("acc", 60, "accepted", "corroborated:2_sources"),
        VerifiedNews(
            id="rel", ts_event=30 * S, source="reuters", headline="h", symbols=("ES",), released=True
        ),
        _v("rel", 30, "accepted", "corroborated_by:acc"),
        _v("exp", 90, "quarantined", "uncorroborated:1/2_sources_in_3600s"),
        _v("rej", 120, "rejected", "prompt_injection:learned_injection"),
        NewsRetracted(retracted=("acc",), by="den", ts_event=150 * S),
    ]
    (tmp_path / "news.jsonl").write_bytes(b"".join(json_encoder.encode(m) + b"\n" for m in msgs) + b"{torn")
    marks = read_news_marks(tmp_path / "news.jsonl")
    kinds = {k: v[1] for k, v in marks.items.items()}
    assert kinds == {"acc": "retracted", "rel": "released", "exp": "expired", "rej": "rejected"}
    assert "retracted_by:den" in marks.items["acc"][2]
    prices = {"ES": [[t * S, 1650.0 + t / 100] for t in range(0, 200, 10)]}
    [(_, png, note)] = news_figures(tmp_path, prices)
    assert png is not None and png.startswith(b"\x89PNG")
    assert "rej [rejected] prompt_injection:learned_injection" in note and "rel [" not in note


def test_no_news_file_no_panel(tmp_path: Path) -> None:
    assert news_figures(tmp_path, {"ES": [[0, 1.0]]}) == []
