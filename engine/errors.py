"""Errors raised by the engine.  Every one derives from :class:`EngineError`."""

from __future__ import annotations

__all__ = [
    "ActorStopped",
    "ConfigError",
    "EngineError",
    "Escalation",
    "MailboxClosed",
    "MailboxEmpty",
    "NoResponder",
    "RequestTimeout",
]


class EngineError(Exception):
    """Base of every engine error; catch it to handle any of them."""


class MailboxEmpty(EngineError):
    """Raised by ``Mailbox.receive_nowait`` when nothing is queued.

    The caller should wait (``await receive()``) or try again later.
    """


class MailboxClosed(EngineError):
    """Raised by ``Mailbox.send``/``receive`` once the mailbox is closed.

    Senders should stop sending (the message was counted as shed ``closed``);
    receivers should finish: nothing more will arrive.
    """


class ActorStopped(EngineError):
    """Set on every pending request of an actor that stops or crashes before answering.

    The requester should treat the request as failed and retry elsewhere or give up;
    it is never silently dropped.
    """


class RequestTimeout(EngineError):
    """Raised by ``ActorRef.ask`` / ``Bus.request`` when no answer came within the timeout.

    The request may still be processed later; make requests idempotent or ignore late answers.
    """


class NoResponder(EngineError):
    """Raised by ``Bus.request`` when no actor serves the topic.  Check the pipeline config."""


class Escalation(EngineError):
    """A supervisor exceeded its restart intensity and gives up on its children.

    Raised inside the supervisor's parent; the engine turns the escalation of a
    non-critical subtree into a degraded mode and of a critical one into shutdown.
    ``__cause__`` is the last child failure.
    """


class ConfigError(EngineError):
    """Raised by ``engine.config`` loaders when a config file is invalid.

    The message names the file, the key path and what was expected; fix the file.
    """

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")
