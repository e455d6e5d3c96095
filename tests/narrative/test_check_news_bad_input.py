"""Issue 15, bad input: with MiniLM and the learned detector on, every hostile line gets one
``invalid`` verdict with a reason, in input order, and the good lines around them are decided."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.text.classifier import InjectionHead
from tools.commands.check_news import main

VZ = "Verizon agrees to buy Vodafone's 45% stake in Verizon Wireless for $130 billion"
GOOD_A = {"id": "a", "ts": "2013-09-02T11:00:00Z", "source": "reuters", "headline": VZ}
GOOD_B = {"id": "b", "ts": "2013-09-02T11:10:00Z", "source": "Bloomberg News",
          "headline": "Vodafone to sell Verizon Wireless stake to Verizon in $130bn deal"}  # fmt: skip


def test_hostile_lines_with_the_models_on(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ten_mb = b'{"id":"huge","ts":1,"source":"x","headline":"' + b"b" * (10 << 20) + b'"}'
    lines = [
        json.dumps(GOOD_A).encode(),
        b'{"id": "m1", "ts": 1, "source": "x", "headline": "unterminated',  # malformed JSON
        b'{"id":"u1","ts":1,"source":"x","headline":"\xff\xfe broken"}',  # invalid UTF-8
        ten_mb,  # a 10 MB line
        b'{"id":"d1","ts":1,"source":"x","headline":"h","x":' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
        b'{"id":"nf","ts":1,"headline":"no source"}',  # a required field missing
        b'{"id":"nh","ts":1,"source":"reuters"}',
        b"[1, 2, 3]",  # JSON, but not an object
        json.dumps(GOOD_B).encode(),
    ]
    inp.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["--in", str(inp), "--out", str(out)]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["line"] for r in recs] == list(range(1, 10))
    verdicts = [r["verdict"] for r in recs]
    assert verdicts[0] == verdicts[-1] == "accepted"
    assert verdicts[1:-1] == ["invalid"] * 7
    codes = [r["error"] for r in recs[1:-1]]
    assert codes == ["invalid_json", "invalid_utf8", "too_large", "too_deep", "invalid_field",
                     "invalid_field", "invalid_json"]  # fmt: skip
    assert all(r["reasons"] and r["reasons"][0].startswith("parse_error:") for r in recs[1:-1])
    assert all(len(r["raw"].encode()) <= 256 + 3 for r in recs[1:-1])  # bounded, never the 10 MB
    # The detector scored the good lines (it ran, it did not flag them).
    assert "injection_model" in recs[0]["scores"]
    assert recs[0]["scores"]["injection_model"] < InjectionHead().injection_threshold
