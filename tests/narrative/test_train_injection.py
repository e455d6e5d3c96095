"""The head's trainer reads spent held-out sets as passages (tools.train_injection --spent)."""

from __future__ import annotations

import pytest

from tools.train_injection import _heldout_rows


def test_a_spent_set_becomes_labelled_passages_grouped_by_text_or_story() -> None:
    rows = _heldout_rows("heldout3")
    labels = {r["label"] for r in rows}
    assert labels == {"benign", "injection", "pump"}
    # benign hard negatives are marked hard; stories' prose is benign and not hard
    assert any(r["hard"] for r in rows) and any(not r["hard"] and r["label"] == "benign" for r in rows)
    # one group per attack text or story: the 70/30 split never cuts a text in two
    assert len({r["group"] for r in rows}) < len(rows)


def test_a_directory_that_is_not_a_held_out_set_is_refused() -> None:
    with pytest.raises(SystemExit, match="not a held-out set"):
        _heldout_rows("no_such_set")


def test_extra_rows_reads_only_the_files_given() -> None:
    # The manifest lists the files read; a writer's file that appears during a run is not in it.
    from tools.train_injection import DATA, _extra_rows

    a = DATA / "injection_extra" / "writer_a.jsonl"
    rows = _extra_rows([a])
    assert rows and all(r["id"].startswith("xa-") for r in rows)
    assert _extra_rows([]) == []
    assert [r["id"] for r in _extra_rows(only="writer_a")] == [r["id"] for r in rows]
