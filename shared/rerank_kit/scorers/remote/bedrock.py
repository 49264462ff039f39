"""Amazon Bedrock rerankers (Amazon Rerank, Cohere Rerank on Bedrock) through ``boto3``'s ``bedrock-agent-runtime``."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Optional, TypeVar

from pydantic import Field, SecretStr

from rerank_kit._optional import require
from rerank_kit.errors import ProviderAuthError, ProviderError, ProviderRequestError, ProviderResponseError
from rerank_kit.options import RequestOptions, client_field
from rerank_kit.scorers.remote.base import OnWireFormat, RemoteScorer
from rerank_kit.scorers.remote.batching import ChunkAnswer
from rerank_kit.scorers.remote.support import Secret, TransientProviderError
from rerank_kit.scorers.remote.wire import BedrockWire

T = TypeVar("T")

#: The standard AWS chain's variables: keys or a profile (boto3 also reads SSO and instance roles).
BEDROCK_KEY_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE")
#: Where the raw answer body is kept in boto3's parsed response, to check it as sent.
_RAW_BODY = "RerankKitRawBody"


def _aws_secret(what: str) -> Any:
    return Field(default=None, exclude=True, repr=False, description=f"{what}; None: the standard AWS chain.")


class BedrockOptions(RequestOptions):
    """Options of the Amazon Bedrock rerank backend."""

    positional = ("model",)

    model: str = Field(default="amazon.rerank-v1:0", description="Bedrock rerank model id (amazon.rerank-v1:0, "
                       "cohere.rerank-v3-5:0) or a full model ARN.")
    region_name: Optional[str] = Field(default=None, description="AWS region; None: the standard AWS chain "
                                       "(AWS_REGION, the profile's region).")
    credentials_profile_name: Optional[str] = Field(default=None, description="AWS profile; None: the default.")
    aws_access_key_id: Optional[SecretStr] = _aws_secret("AWS access key id")
    aws_secret_access_key: Optional[SecretStr] = _aws_secret("AWS secret access key")
    aws_session_token: Optional[SecretStr] = _aws_secret("AWS session token")
    endpoint_url: Optional[str] = Field(default=None, description="Endpoint override (VPC endpoint, local test "
                                        "server); None: the region's.")
    additional_model_request_fields: Optional[dict[str, Any]] = Field(
        default=None, description="Model-specific request fields (additionalModelRequestFields)."
    )
    max_batch_size: Optional[int] = Field(default=None, ge=1, description="Documents per request; None: 1000.")
    client: Any = client_field("boto3 bedrock-agent-runtime client")


class BedrockScorer(OnWireFormat, RemoteScorer):
    """Scores with a reranker on Amazon Bedrock; scores are Bedrock's ``relevanceScore``.

    Region and credentials come from the standard AWS chain unless given. Requests hold at most 1,000
    documents and each text at most 32,000 characters (Bedrock's limits; longer texts are cut, the model
    reads far fewer tokens anyway). boto3 has no async client, so the async path runs the sync client in a
    daemon thread (the attempt's ``timeout`` still bounds it; botocore's own retries are off). ``usage``
    records the documents sent (Bedrock's answer reports no usage; its price is per query of documents).
    """

    Options = BedrockOptions
    key_env_vars = BEDROCK_KEY_ENV_VARS

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        given = options.aws_secret_access_key
        secret = given.get_secret_value() if given is not None else os.environ.get("AWS_SECRET_ACCESS_KEY")
        self._api_key = Secret(secret) if secret else None  # what errors are redacted of
        self._lock = threading.Lock()
        self._wire: BedrockWire | None = None
        self._session = None if options.client is not None else self._aws_session(options)

    @staticmethod
    def _aws_session(options: Any) -> Any:
        """A boto3 session from the options and the standard AWS chain; no region anywhere is an error here."""
        secrets = {name: value.get_secret_value() for name in ("aws_access_key_id", "aws_secret_access_key",
                                                               "aws_session_token")
                   if (value := getattr(options, name)) is not None}
        session = require("boto3", "bedrock").session.Session(
            profile_name=options.credentials_profile_name, region_name=options.region_name, **secrets)
        if session.region_name is None:
            raise ValueError("Bedrock needs an AWS region: pass region_name=... or set AWS_REGION")
        return session

    @property
    def cache_key(self) -> str:
        return f"bedrock|{self.model}|{self.region_name}|{self.endpoint_url}|{self.additional_model_request_fields}"

    @property
    def wire(self) -> BedrockWire:  # type: ignore[override]
        """The wire format, with the model's ARN in the client's region."""
        if self._wire is None:
            model = self.model
            if not model.startswith("arn:"):
                model = f"arn:aws:bedrock:{self.client.meta.region_name}::foundation-model/{model}"
            self._wire = BedrockWire(model_arn=model,
                                     additional_model_request_fields=self.additional_model_request_fields)
        return self._wire

    @property
    def provider(self) -> str:  # type: ignore[override]
        return "Bedrock"

    @property
    def max_documents(self) -> int:  # type: ignore[override]
        return self.max_batch_size or BedrockWire.max_documents

    @property
    def client(self) -> Any:
        """The boto3 ``bedrock-agent-runtime`` client (thread-safe), built on first use unless one was given."""
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            self._client.meta.events.register("before-parse.bedrock-agent-runtime.Rerank", _keep_raw_body,
                                              unique_id="rerank-kit-raw-body")
            return self._client

    def _build_client(self) -> Any:
        config = require("botocore.config", "bedrock").Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=self.timeout,
            read_timeout=self.timeout, max_pool_connections=self.max_concurrency,
        )
        return self._session.client("bedrock-agent-runtime", endpoint_url=self.endpoint_url, config=config)

    def _uses_sync_client(self) -> bool:
        return False

    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        """One request, following ``nextToken`` pages until every document has its result."""
        request = self.wire.body(query, texts)
        pairs: list[tuple[object, object]] = []
        while True:
            try:
                response = self.client.rerank(**request)
            except Exception as exc:
                raise self._translate(exc) from None
            raw = response.get(_RAW_BODY)
            page = self.wire.parse(response) if raw is None else self.wire.answer(200, {}, raw, len(texts),
                                                                                  self._api_key)
            pairs.extend(page.pairs)
            token = response.get("nextToken")
            if not token or not page.pairs or len(pairs) >= len(texts):
                return ChunkAnswer(pairs, {"documents": len(texts)})
            request = {**request, "nextToken": token}

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        """Builds the boto3 client (slow: ~0.5 s) before the first attempt, so no ``timeout`` pays for it."""
        if self._client is None:
            await in_daemon_thread(lambda: (self.client, self.wire))
        return await super().ascore(query, texts)

    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        return await in_daemon_thread(lambda: self._send(query, texts))

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what boto3 raised; unknown exceptions pass through."""
        if isinstance(exc, ProviderError):
            return exc
        errors = require("botocore.exceptions", "bedrock")
        if isinstance(exc, errors.ClientError):
            metadata = exc.response.get("ResponseMetadata", {})
            error = exc.response.get("Error", {})
            message = str(error.get("Message") or error.get("Code") or "")
            return self.wire.error(metadata.get("HTTPStatusCode") or 0, {"message": message}, b"",
                                   metadata.get("HTTPHeaders"), self._api_key)
        if isinstance(exc, (errors.ReadTimeoutError, errors.ConnectTimeoutError)):
            return TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout")
        if isinstance(exc, (errors.HTTPClientError, errors.ConnectionError)):
            return TransientProviderError(self.provider, f"connection failed ({type(exc).__name__})")
        if isinstance(exc, (errors.NoCredentialsError, errors.PartialCredentialsError)):
            return ProviderAuthError(self.provider, f"no usable AWS credentials ({exc})")
        if isinstance(exc, errors.ParamValidationError):
            return ProviderRequestError(self.provider, f"request rejected by boto3: {exc}")
        if isinstance(exc, require("botocore.parsers", "bedrock").ResponseParserError):
            return ProviderResponseError(self.provider, "the response body is not a rerank result")
        return exc


def _keep_raw_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore hook: keep a successful answer's raw body (its parser coerces ``"1"`` and ``1.0`` to ``1``)."""
    if 200 <= response_dict.get("status_code", 0) < 300:
        customized_response_dict[_RAW_BODY] = response_dict.get("body")


async def in_daemon_thread(work: Callable[[], T]) -> T:
    """``work()`` in a daemon thread; cancelling the await abandons the thread rather than waiting for it.

    Neither ``asyncio.to_thread`` nor an executor fits: both are joined at shutdown, so one read stuck on a
    trickling server would hold up ``asyncio.run`` or the interpreter's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        outcome: Callable[[], None]
        try:
            outcome = functools.partial(future.set_result, work())
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = functools.partial(future.set_exception, exc)
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    threading.Thread(target=run, name="rerank-kit-bedrock", daemon=True).start()
    return await future
