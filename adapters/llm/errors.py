"""Errors of the OpenAI-compatible LLM client (:mod:`adapters.llm`).

Every error the client raises is an :class:`LLMError`.  ``retryable`` says
whether another attempt (on the same or another endpoint) may succeed; the
client itself already retried within its budget, so a caller that catches one
should give up on this request, count it, and carry on without the answer.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "CircuitOpen",
    "ConnectFailed",
    "DeadlineExceeded",
    "InvalidAnswer",
    "LLMError",
    "MalformedResponse",
    "NoEndpointAvailable",
    "ServerError",
]


class LLMError(Exception):
    """Base of every LLM client error; ``endpoint`` names the endpoint involved, if any."""

    retryable: bool = False

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ConnectFailed(LLMError):
    """Raised by the transport when the TCP connection cannot be opened or breaks mid-request.

    The client retries it on another endpoint; a caller seeing it knows every try failed.
    """

    retryable = True


class ServerError(LLMError):
    """Raised by the client for HTTP 5xx or 429 answers; ``status`` is the HTTP status.

    Retried within the budget; a caller seeing it should treat the tier as unavailable for now.
    """

    retryable = True

    def __init__(self, message: str, *, endpoint: str = "", status: int = 0) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status


class MalformedResponse(LLMError):
    """Raised by the client when the HTTP body or the SSE stream is not the OpenAI envelope.

    A server fault: retried, and counted against the endpoint's circuit breaker.
    """

    retryable = True


class CircuitOpen(LLMError):
    """Raised by the client when the chosen endpoint's circuit breaker refuses the call.

    The client fails over to another endpoint; callers normally see :class:`NoEndpointAvailable`.
    """

    retryable = True


class NoEndpointAvailable(LLMError):
    """Raised by the client when every endpoint's circuit is open: fail fast, do not wait.

    Callers should skip the cloud tier for this event; the breakers half-open on their own.
    """


class BadRequest(LLMError):
    """Raised by the client for HTTP 4xx answers other than 429: our request is wrong.

    Not retried; fix the configuration (model name, schema dialect, token limits).
    """

    def __init__(self, message: str, *, endpoint: str = "", status: int = 0) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status


class DeadlineExceeded(LLMError):
    """Raised by the client when the per-request deadline passed; in-flight calls were cancelled.

    The connections were closed so the server stops generating; the caller drops the request.
    """


class InvalidAnswer(LLMError):
    """Raised by the client when the model's answer does not validate into the requested Struct.

    Counted (``llm_invalid_answers_total``) and dropped, never passed on; ``content`` keeps the
    raw text for the dead-letter record and ``reason`` the validation error.
    """

    def __init__(self, message: str, *, endpoint: str = "", content: str = "", reason: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.content = content
        self.reason = reason
