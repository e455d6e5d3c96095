"""Pins the engine's public surface: adding or removing a public name is a deliberate act."""

from __future__ import annotations

import importlib
import typing

import msgspec
import pytest

from engine import errors, messages

PUBLIC = {
    "engine.actor": ["Actor", "ActorCell", "ActorContext", "ActorRef", "NoConfig"],
    "engine.bus": ["Bus", "topic_matches"],
    "engine.cli": ["commands", "main"],
    "engine.clock": ["Clock", "LiveClock", "SimClock", "TimerHandle"],
    "engine.compose": ["Override", "compose", "get_path", "parse_path", "parse_value", "substitute"],
    "engine.config": [
        "ActorSpec", "AppSection", "BindPort", "EngineConfig", "EngineSection", "MailboxConfig",
        "NonNegativeFloat", "NonNegativeInt", "Override", "Port", "PositiveFloat", "PositiveInt",
        "SupervisorSpec", "convert", "load_config", "loads_config", "merge", "parse_host_port", "resolve",
    ],
    "engine.errors": [
        "ActorStopped", "ConfigError", "EngineError", "Escalation", "MailboxClosed",
        "MailboxEmpty", "NoResponder", "RequestTimeout",
    ],
    "engine.health": [
        "ChildHealth", "ChildState", "HealthConfig", "HealthLogger", "NodeHealth", "TierHealth",
        "TierRecorder", "TierState", "TierStatus", "assess",
    ],
    "engine.kernel": ["Engine", "RunSummary", "run_engine", "run_on_loop"],
    "engine.replay": ["Emit", "ReplayDriver", "ReplayInput"],
    "engine.logging": ["configure_logging"],
    "engine.mailbox": ["Mailbox", "MailboxStatistics", "OfferResult", "Policy"],
    "engine.messages": [
        "Bar", "BreakerState", "CancelOrder", "DeadLetter", "EscalationRoute", "Fill", "Forecast",
        "Heartbeat", "Message",
        "Mode", "ModeChange", "ModelDecision",
        "NewsItem", "NewsRetracted", "NewsVerdict", "Order", "OrderReject", "Quote", "ReasoningTrace", "Side",
        "Trade",
        "VerifiedNews", "json_decoder", "json_encoder", "msgpack_decoder", "msgpack_encoder",
    ],
    "engine.metrics": ["Counter", "Gauge", "Histogram", "Metrics"],
    "engine.runtime": ["Runtime"],
    "engine.supervisor": [
        "PARK_AFTER", "PARK_WINDOW_S", "ChildSpec", "Restart", "Strategy", "Supervisor", "SupervisorConfig",
    ],
    "engine.testing": ["FakeClock", "Probe", "capture_logs", "settle"],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"


def test_every_message_is_a_frozen_tagged_struct() -> None:
    classes = typing.get_args(messages.Message)
    tags = [c.__struct_config__.tag for c in classes]
    assert len(set(tags)) == len(tags)
    for cls in classes:
        assert issubclass(cls, msgspec.Struct)
        assert cls.__struct_config__.frozen, cls
        for f in msgspec.structs.fields(cls):
            if f.name.startswith("ts_"):
                assert f.type is int, f"{cls.__name__}.{f.name} must be integer ns"


def test_engine_errors_share_one_base_and_are_documented() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.EngineError)
        assert cls.__doc__ and len(cls.__doc__.strip()) > 20


def test_engine_imports_nothing_of_ours_outside_engine() -> None:
    import pathlib
    import re

    root = pathlib.Path(messages.__file__).parent
    pat = re.compile(r"^\s*(from|import)\s+(actors|adapters|strategies|tools)\b", re.M)
    offenders = [p.name for p in root.glob("*.py") if pat.search(p.read_text())]
    assert offenders == []
