"""Backend options as pydantic models: each option's name, type, default and description written once.

A scorer validates its keyword arguments with its ``Options`` model; both adapters' classes inherit the
same model, so a LangChain compressor, a LlamaIndex postprocessor and the core scorer accept exactly the
same options with the same defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

from rerank_kit.validation import check_threshold, check_top_n

Normalize = Literal["none", "sigmoid", "minmax"]
OnError = Literal["raise", "keep_order"]

#: Default number of results: enough context for an LLM answer, few enough to keep prompts small.
DEFAULT_TOP_N = 5


class BackendOptions(BaseModel):
    """Base of every backend's options: unknown names are errors, assignments are validated."""

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, validate_assignment=True, protected_namespaces=(),
        populate_by_name=True,
    )

    #: Options a scorer also takes positionally, in order (``CohereScorer("rerank-v3.5")``).
    positional: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_call(cls, args: Sequence[Any], kwargs: Mapping[str, Any]) -> BackendOptions:
        """Validate a scorer's ``(*args, **kwargs)``; positional arguments fill :attr:`positional` in order."""
        if len(args) > len(cls.positional):
            raise TypeError(f"{cls.__name__} takes at most {len(cls.positional)} positional argument(s)")
        named = dict(zip(cls.positional, args))
        twice = sorted(set(named) & set(kwargs))
        if twice:
            raise TypeError(f"{', '.join(twice)} given both positionally and by keyword")
        return cls(**named, **kwargs)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of option ``name``."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    def values(self) -> dict[str, Any]:
        """The options as keyword arguments (secrets stay wrapped)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class LocalModelOptions(BackendOptions):
    """Where and how a local model is loaded (sentence-transformers / transformers conventions)."""

    device: Optional[str] = Field(default=None, description="Torch device; None picks cuda > mps > cpu.")
    local_files_only: bool = Field(default=False, description="Never contact the model hub.")
    trust_remote_code: bool = Field(default=False, description="Allow custom model code from the hub.")
    revision: Optional[str] = Field(default=None, description="Model revision (branch, tag or commit).")


class RequestOptions(BackendOptions):
    """How every remote backend talks to its service: time limits, retries and concurrency."""

    timeout: Optional[float] = Field(default=60.0, gt=0, description="Seconds one attempt may take in all.")
    deadline: Optional[float] = Field(
        default=None, gt=0, description="Seconds one call may take across all retries; None: no limit."
    )
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries on 408/429/5xx/timeouts.")
    backoff: float = Field(default=0.5, ge=0, description="First retry wait in seconds (doubles, capped).")
    max_concurrency: int = Field(default=8, ge=1, description="Most requests in flight at once.")

    @property
    def request_policy(self) -> RequestPolicy:
        """The request options as one object for the remote scorer base."""
        return RequestPolicy(self.timeout, self.deadline, self.max_retries, self.backoff, self.max_concurrency)


@dataclass(frozen=True)
class RequestPolicy:
    """Time limits, retries and concurrency of one remote scorer."""

    timeout: float | None
    deadline: float | None
    max_retries: int
    backoff: float
    max_concurrency: int


def api_key_field(env_vars: Sequence[str], *, alias: str | None = None) -> Any:
    """The ``api_key`` option: a secret, never serialized or shown, read from ``env_vars`` when not given.

    ``alias`` is the name the vendor's own integration uses (``cohere_api_key``), accepted as well.
    """
    names = tuple(env_vars)

    def from_env() -> SecretStr | None:
        value = next((os.environ[name] for name in names if os.environ.get(name)), None)
        return None if value is None else SecretStr(value)

    where = f"defaults to {' or '.join(names)}" if names else "optional"
    choices = AliasChoices("api_key", alias) if alias else None
    return Field(default_factory=from_env, exclude=True, repr=False, description=f"API key ({where}).",
                 validation_alias=choices)


def client_field(what: str) -> Any:
    """A ready SDK client option (never serialized)."""
    return Field(default=None, exclude=True, repr=False, description=f"A ready {what} to reuse.")


ApiKey = Optional[SecretStr]


class RerankOptions(BackendOptions):
    """The reranking policy every reranker in both adapters shares (see :class:`~rerank_kit.Reranker`)."""

    top_n: Optional[int] = Field(default=DEFAULT_TOP_N, description="How many to return, best first; None for all.")
    score_threshold: Optional[float] = Field(default=None, description="Drop results scoring below this.")
    normalize: Normalize = Field(default="none", description="'none', 'sigmoid' or 'minmax' score scaling.")
    cache: Optional[bool] = Field(default=None, description="Score cache; None: on for local models only.")
    keep_retrieval_score: bool = Field(
        default=False, description="Keep the first-stage score in the result's metadata as retrieval_score."
    )
    on_error: OnError = Field(
        default="raise",
        description="'raise' a provider failure, or 'keep_order': return the first-stage order, flagged.",
    )

    @field_validator("top_n", mode="before")
    @classmethod
    def _top_n(cls, value: Any) -> int | None:
        return check_top_n(value)

    @field_validator("score_threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> float | None:
        return check_threshold(value)
