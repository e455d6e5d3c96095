"""OpenAI-compatible LLM client for the cloud tier (see :mod:`adapters.llm.client`)."""

from adapters.llm.client import ChatMessage, Completion, EndpointConfig, LLMClient, LLMClientConfig
from adapters.llm.dialects import Dialect, inline_schema, schema_for, structured_output_fields
from adapters.llm.errors import (
    BadRequest,
    CircuitOpen,
    ConnectFailed,
    DeadlineExceeded,
    InvalidAnswer,
    LLMError,
    MalformedResponse,
    NoEndpointAvailable,
    ServerError,
)

__all__ = [
    "BadRequest",
    "ChatMessage",
    "CircuitOpen",
    "Completion",
    "ConnectFailed",
    "DeadlineExceeded",
    "Dialect",
    "EndpointConfig",
    "InvalidAnswer",
    "LLMClient",
    "LLMClientConfig",
    "LLMError",
    "MalformedResponse",
    "NoEndpointAvailable",
    "ServerError",
    "inline_schema",
    "schema_for",
    "structured_output_fields",
]
