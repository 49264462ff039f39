"""A model that cannot be loaded fails at once, in one line naming the model and what to do."""

from __future__ import annotations

import socket
import time

import pytest

from rerank_kit import EmbeddingScorer, ModelLoadError
from rerank_kit.model_loading import load_model


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_uncached_hub_name_fails_at_once_when_the_hub_is_unreachable(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as raised:
        EmbeddingScorer("acme/not-a-cached-model").embed_texts(["x"])
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "\n" not in message
    assert "'acme/not-a-cached-model'" in message and "unreachable" in message
    assert "local folder" in message and "HF_HUB_OFFLINE" in message and "model='offline'" in message


def test_with_the_hub_switched_off_the_error_says_so(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="switched off"):
        load_model("acme/not-a-cached-model", lambda: None)


def test_a_failing_loader_becomes_one_line_and_keeps_the_cause(tmp_path) -> None:
    def broken() -> None:
        raise OSError("config.json is missing\nmore details")

    with pytest.raises(ModelLoadError, match=r"could not load model .*\(config.json is missing\)") as raised:
        load_model(str(tmp_path), broken)
    assert isinstance(raised.value.__cause__, OSError) and isinstance(raised.value, OSError)


def test_the_offline_embedding_model_needs_no_hub(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = EmbeddingScorer("offline")
    assert scorer.score("reset password", ["reset my password", "the cat"])[0] > 0.3


def test_a_cross_encoder_hub_name_fails_at_once_offline(monkeypatch) -> None:
    from rerank_kit import CrossEncoderScorer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="'acme/reranker-not-cached'.*HF_HUB_OFFLINE"):
        CrossEncoderScorer("acme/reranker-not-cached").score("q", ["a"])
    assert time.monotonic() - started < 5
