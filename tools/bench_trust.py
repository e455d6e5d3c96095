"""Signing overhead of node traffic (adapters/trust_net.py): microseconds per message.

``python -m tools.bench_trust [--n N] [--json]`` signs and verifies ``N`` heartbeat-sized
records (the msgpack encoding of a :class:`~engine.messages.Heartbeat`) and reports the mean
cost per message of signing (``sign_us``), verifying (``verify_us``, replay cache included)
and, as the baseline measured in the same run, encoding + decoding the same heartbeat
(``codec_us``), which every record pays anyway.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from adapters.trust_net import KeyRing, KeyRingConfig, NodeKey, Signer, TrustConfig, Verifier
from engine.messages import Heartbeat, msgpack_decoder, msgpack_encoder

__all__ = ["main", "measure"]


def measure(n: int) -> dict[str, float]:
    """Mean microseconds per message of signing, verifying, and the msgpack codec baseline."""
    keys = KeyRingConfig(keys=(NodeKey(id="k1", secret="ab" * 32),))
    ring = KeyRing(keys)
    signer = Signer(ring)
    verifier = Verifier(TrustConfig(ring=keys, replay_cache_size=max(n, 1)), ring)
    hb = Heartbeat(node_id="edge-7", ts_event=time.time_ns(), latency_p99_us=812.5, partitions=(0, 1, 2))
    value = msgpack_encoder.encode(hb)
    ctx = b"heartbeats\x00edge-7"
    t0 = time.perf_counter()
    signed = [dict(signer.headers(ctx, value)) for _ in range(n)]
    t1 = time.perf_counter()
    for h in signed:
        verifier.verify(ctx, value, h, node_id="edge-7")
    t2 = time.perf_counter()
    for _ in range(n):
        msgpack_decoder.decode(msgpack_encoder.encode(hb))
    t3 = time.perf_counter()
    return {
        "sign_us": (t1 - t0) / n * 1e6,
        "verify_us": (t2 - t1) / n * 1e6,
        "codec_us": (t3 - t2) / n * 1e6,
        "n": float(n),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench_trust", description=__doc__)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = measure(args.n)
    for figure in ("sign_us", "verify_us"):
        line = {
            "bench": "trust",
            "figure": figure,
            "value": round(r[figure], 3),
            "unit": "us",
            "baseline": "msgpack_codec",
            "baseline_value": round(r["codec_us"], 3),
            "ratio": round(r[figure] / r["codec_us"], 2),
            "n": args.n,
            "python": sys.version.split()[0],
        }
        print(
            json.dumps(line)
            if args.json
            else f"{figure}: {line['value']} us (codec {line['baseline_value']} us)"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
