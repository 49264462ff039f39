"""Exceptions raised by rerank-kit; every one names what went wrong and what to fix."""

from __future__ import annotations


class RerankError(Exception):
    """Base class for every error rerank-kit raises on purpose."""


class ScorerError(RerankError):
    """A scorer returned something unusable (wrong count, NaN, ...)."""


class ModelLoadError(RerankError, OSError):
    """A local model could not be loaded; the message names the model and what to do."""


class ProviderError(RerankError):
    """A remote provider (Cohere, Voyage, a /rerank server, Anthropic) failed.

    ``provider`` names the service, ``status_code`` is the HTTP status when there was one.
    """

    def __init__(self, provider: str, message: str, *, status_code: int | None = None) -> None:
        self.provider = provider
        self.status_code = status_code
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"{provider}{status}: {message}")


class ProviderAuthError(ProviderError):
    """401/403: the key is missing, wrong or lacks access. Not retried."""


class ProviderRequestError(ProviderError):
    """400/422: the request itself is wrong (model name, limits). Not retried."""


class ProviderUnavailableError(ProviderError):
    """429, 5xx or timeouts that outlasted every retry."""


class ProviderRateLimitError(ProviderUnavailableError):
    """429 asking to wait longer than we retry for; ``retry_after`` is the wait in seconds it asked for."""

    def __init__(self, provider: str, message: str, *, status_code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(provider, message, status_code=status_code)
        self.retry_after = retry_after


class ProviderResponseError(ProviderError):
    """The provider answered, but the body is malformed, incomplete or inconsistent."""
