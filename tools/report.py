"""``report.html`` of a replay: moved to :func:`adapters.reporting.write_replay_report`.

Kept so ``from tools.report import write_report`` (``finllm replay``) goes on working; the
page is written by the package's one HTML writer (:func:`adapters.reporting.write_report`).
"""

from __future__ import annotations

from adapters.reporting import write_replay_report as write_report

__all__ = ["write_report"]
