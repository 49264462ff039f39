"""Cache keys: lone surrogates, and model fingerprints that change when model files are replaced."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_kit import CrossEncoderScorer, EmbeddingScorer, LRUScoreCache, Reranker, SQLiteScoreCache, model_registry
from rerank_kit.cache import cache_keys
from rerank_kit.model_fingerprint import model_fingerprint
from tests.conftest import KeywordScorer, build_tiny_cross_encoder

SURROGATE_QUERY = "reset \ud800 password"
SURROGATE_TEXTS = ["reset password \udfff", "nothing \ud800", "reset"]


class CacheableKeywordScorer(KeywordScorer):
    """KeywordScorer that opts into caching."""

    @property
    def cache_key(self) -> str:
        return "keyword"


def test_cache_keys_accept_lone_surrogates():
    keys = cache_keys("s", "q\ud800", ["\ud800", "\udfff", "a"])
    assert len({key[2] for key in keys}) == 3


@pytest.mark.parametrize("make_cache", [lambda path: LRUScoreCache(), SQLiteScoreCache], ids=["lru", "sqlite"])
def test_texts_and_queries_with_lone_surrogates_are_scored_and_cached(tmp_path, make_cache):
    cache = make_cache(tmp_path / "scores.sqlite")
    scorer = CacheableKeywordScorer()
    reranker = Reranker(scorer, top_n=None, cache=cache)
    first = reranker.rerank(SURROGATE_QUERY, SURROGATE_TEXTS)
    second = reranker.rerank(SURROGATE_QUERY, SURROGATE_TEXTS)
    assert [(r.index, r.score) for r in first] == [(0, 2.0), (1, 1.0), (2, 1.0)]
    assert second == first
    assert len(scorer.calls) == 1 and cache.hits == 3


def test_sqlite_cache_with_surrogates_persists_across_instances(tmp_path):
    path = tmp_path / "scores.sqlite"
    cache = SQLiteScoreCache(path)
    first = Reranker(CacheableKeywordScorer(), top_n=None, cache=cache).rerank(SURROGATE_QUERY, SURROGATE_TEXTS)
    cache.close()
    scorer, reopened = CacheableKeywordScorer(), SQLiteScoreCache(path)
    assert Reranker(scorer, top_n=None, cache=reopened).rerank(SURROGATE_QUERY, SURROGATE_TEXTS) == first
    assert scorer.calls == [] and reopened.hits == 3


def test_sqlite_cache_opens_a_file_of_the_old_layout(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE scores (scorer TEXT, query TEXT, text_hash TEXT, score REAL,"
               " PRIMARY KEY (scorer, query, text_hash))")
    db.execute("INSERT INTO scores VALUES ('keyword', 'reset', 'abc', 1.0)")
    db.commit()
    db.close()
    cache = SQLiteScoreCache(path)
    results = Reranker(CacheableKeywordScorer(), top_n=None, cache=cache).rerank("reset", ["x", "reset"])
    assert [r.index for r in results] == [1, 0]


def _fake_model(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"hidden_size": 32}')
    (path / "model.safetensors").write_bytes(b"\0" * 64)
    (path / "vocab.txt").write_text("a\nb\n")
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text("{}")
    return path


def _rewrite(path: Path, data: bytes) -> None:
    """Rewrite ``path`` with a later mtime (a same-tick rewrite could keep the old mtime on coarse clocks)."""
    old = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(old + 10**9, old + 10**9))


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "vocab.txt", "1_Pooling/config.json"])
def test_fingerprint_changes_when_a_model_file_is_rewritten(tmp_path, name):
    model = _fake_model(tmp_path / "m")
    before = model_fingerprint(str(model))
    _rewrite(model / name, (model / name).read_bytes().replace(b"\0", b"\1").replace(b"}", b" }"))
    assert model_fingerprint(str(model)) != before


def test_fingerprint_is_stable_otherwise(tmp_path):
    model = _fake_model(tmp_path / "m")
    first = model_fingerprint(str(model))
    (model / "README.md").write_text("notes")
    (model / ".cache").mkdir()
    (model / ".cache" / "x.json").write_text("{}")
    assert model_fingerprint(str(model)) == first == model_fingerprint(str(model) + "/")
    assert first.startswith("local:") and str(tmp_path) not in first


def test_fingerprint_of_a_hub_name_uses_the_cached_commit_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    commit = "0123456789abcdef0123456789abcdef01234567"
    refs = tmp_path / "models--org--model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit)
    assert model_fingerprint("org/model") == f"org/model@{commit}"
    assert model_fingerprint("org/model", "v2") == "org/model@v2"
    assert model_fingerprint("org/other") == "org/other"
    assert model_fingerprint("org/other", commit) == f"org/other@{commit}"


def test_fingerprint_does_not_import_torch(tmp_path):
    model = _fake_model(tmp_path / "m")
    code = (
        "import sys; from rerank_kit.model_fingerprint import model_fingerprint; "
        f"model_fingerprint({str(model)!r}); model_fingerprint('org/model'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scorer_cache_keys_follow_the_model_files(tmp_path):
    model = _fake_model(tmp_path / "m")
    cross, embedding = CrossEncoderScorer(str(model)), EmbeddingScorer(str(model))
    keys = (cross.cache_key, embedding.cache_key)
    assert keys == (cross.cache_key, embedding.cache_key)
    _rewrite(model / "model.safetensors", b"\1" * 64)
    assert cross.cache_key != keys[0] and embedding.cache_key != keys[1]


def test_sqlite_cache_gives_the_new_models_scores_after_the_model_is_replaced(tmp_path):
    path, db = tmp_path / "model", tmp_path / "scores.sqlite"
    query, texts = "reset password", ["how do i reset my password", "paris is the capital of france", "login error"]
    build_tiny_cross_encoder(path, seed=0)
    model_registry.clear()
    cache = SQLiteScoreCache(db)
    old = [r.score for r in Reranker(CrossEncoderScorer(str(path)), top_n=None, cache=cache).rerank(query, texts)]
    cache.close()

    shutil.rmtree(path)
    build_tiny_cross_encoder(path, seed=1)
    model_registry.clear()  # as in a new process: the registry would still hold the old model
    fresh = [r.score for r in Reranker(CrossEncoderScorer(str(path)), top_n=None, cache=False).rerank(query, texts)]
    reopened = SQLiteScoreCache(db)
    cached = [r.score for r in Reranker(CrossEncoderScorer(str(path)), top_n=None, cache=reopened).rerank(query, texts)]
    assert cached == fresh != old
    assert reopened.hits == 0
    model_registry.clear()
