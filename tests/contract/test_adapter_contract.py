"""The adapter contract: every backend in both adapters (LangChain, LlamaIndex) behaves the same way.

Parametrized over framework x (every registry row, plus ``Rerank``) x sync/async; see ``cases.py``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from rerank_kit.metadata import PER_CALL_KEYS
from tests.api_servers import SECRET_KEY
from tests.contract.cases import (
    CASES, CORPUS, FRAMEWORKS, QUERY, Env, Servers, contract_cases, contract_rerank_classes,
)

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    modes = ["sync", "async"] if "mode" in metafunc.fixturenames else [None]
    params = [
        pytest.param(framework, case, *([mode] if mode else []),
                     id="-".join([framework, case.id, *([mode] if mode else [])]))
        for framework in FRAMEWORKS for case in contract_cases() for mode in modes
    ]
    names = ["framework", "case", *(["mode"] if modes != [None] else [])]
    metafunc.parametrize(names, params)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    started.close()


@pytest.fixture
def env(framework: str, servers: Servers, request: pytest.FixtureRequest) -> Env:
    return Env(FRAMEWORKS[framework], servers, request)


async def call(env: Env, mode: str, reranker: Any, items: list[Any], query: str = QUERY) -> list[Any]:
    """Rerank through the framework's sync or async entry point."""
    if mode == "sync":
        return env.framework.run(reranker, items, query)
    return await env.framework.arun(reranker, items, query)


def ranking(env: Env, results: list[Any]) -> list[tuple[str, float]]:
    return [(env.framework.key(r), env.framework.metadata(r)["relevance_score"]) for r in results]


def test_every_registry_row_has_a_case() -> None:
    covered = {case.rerank_class for case in CASES}
    assert [name for name in contract_rerank_classes() if name not in covered] == []


async def test_results_are_new_objects_best_first_with_score_metadata(env, case, mode) -> None:
    fw = env.framework
    items = fw.inputs(CORPUS)
    everything = await call(env, mode, case.build(env, top_n=None), items)
    top = await call(env, mode, case.build(env, top_n=2), items)
    assert [fw.key(r) for r in top] == [fw.key(r) for r in everything][:2]
    scores = [score for _, score in ranking(env, everything)]
    assert scores == sorted(scores, reverse=True)
    for result in everything:
        metadata = fw.metadata(result)
        original = items[metadata["original_index"]]
        assert all(result is not item for item in items)
        assert metadata is not fw.metadata(original)
        assert type(metadata["relevance_score"]) is float and type(metadata["original_index"]) is int
        assert isinstance(metadata["reranker_backend"], str) and metadata["reranker_backend"]
        if case.backend_name is not None:
            assert metadata["reranker_backend"] == case.backend_name
        assert fw.native_score(result) == metadata["relevance_score"]
        if case.expected_score is not None:
            assert metadata["relevance_score"] == pytest.approx(case.expected_score(QUERY, fw.scored_text(original)))
        assert (fw.key(result), fw.text(result)) == (fw.key(original), fw.text(original))
        given = {key: value for key, value in fw.metadata(original).items() if key != "relevance_score"}
        assert set(metadata) == {*given, "relevance_score", "original_index", "reranker_backend", *PER_CALL_KEYS}
        assert type(metadata["rerank_cache_hit"]) is bool and metadata["rerank_latency_ms"] >= 0
        assert {key: metadata[key] for key in given} == given


async def test_async_matches_sync(env, case) -> None:
    fw = env.framework
    items = fw.inputs(CORPUS)
    reranker = case.build(env, top_n=None)
    assert fw.snapshot(await fw.arun(reranker, items, QUERY)) == fw.snapshot(fw.run(reranker, items, QUERY))


async def test_inputs_are_not_mutated_and_results_are_deep_copies(env, case, mode) -> None:
    fw = env.framework
    items = fw.inputs(CORPUS)
    before = fw.snapshot(items)
    results = await call(env, mode, case.build(env, top_n=None, keep_retrieval_score=True), items)
    assert fw.snapshot(items) == before
    for result in results:
        metadata = fw.metadata(result)
        metadata["extra"]["seen"].append(99)
        metadata["tags"].append("changed")
        metadata["source"] = "changed"
    assert fw.snapshot(items) == before


async def test_duplicate_texts_are_both_kept_with_the_same_score(env, case, mode) -> None:
    fw = env.framework
    items = fw.inputs([*CORPUS[:3], CORPUS[1]])
    results = await call(env, mode, case.build(env, top_n=None), items)
    scores = {fw.metadata(r)["original_index"]: fw.metadata(r)["relevance_score"] for r in results}
    assert sorted(scores) == [0, 1, 2, 3]
    assert scores[1] == scores[3]


async def test_top_n_none_returns_every_item(env, case, mode) -> None:
    fw = env.framework
    items = fw.inputs(CORPUS)
    results = await call(env, mode, case.build(env, top_n=None), items)
    assert sorted(fw.metadata(r)["original_index"] for r in results) == list(range(len(CORPUS)))


async def test_score_threshold_drops_lower_scores(env, case, mode) -> None:
    items = env.framework.inputs(CORPUS)
    ranked = ranking(env, await call(env, mode, case.build(env, top_n=None), items))
    distinct = sorted({score for _, score in ranked}, reverse=True)
    assert len(distinct) >= 2, f"{case.id} gave no score spread on the test corpus: {ranked}"
    threshold = distinct[(len(distinct) - 1) // 2]
    kept = await call(env, mode, case.build(env, top_n=None, score_threshold=threshold), items)
    assert ranking(env, kept) == [(key, score) for key, score in ranked if score >= threshold]
    assert len(kept) < len(ranked)


async def test_empty_input_returns_an_empty_list(env, case, mode) -> None:
    assert await call(env, mode, case.build(env), []) == []


async def test_keep_retrieval_score_adds_the_first_stage_score(env, case, mode) -> None:
    fw = env.framework
    items = fw.inputs(CORPUS)
    kept = await call(env, mode, case.build(env, top_n=None, keep_retrieval_score=True), items)
    for result in kept:
        metadata = fw.metadata(result)
        assert metadata["retrieval_score"] == fw.first_stage_score(items[metadata["original_index"]])
    plain = await call(env, mode, case.build(env, top_n=None), items)
    assert all("retrieval_score" not in fw.metadata(result) for result in plain)


def test_an_unknown_keyword_fails_at_construction(env, case) -> None:
    with pytest.raises((TypeError, ValueError), match="topn"):
        case.build(env, topn=2)


@pytest.mark.parametrize(("top_n", "message"), [(0, "top_n must be >= 1"), (-1, "top_n must be >= 1"),
                                                 ("3", "top_n must be a positive int")])
def test_a_bad_top_n_fails_at_construction(env, case, top_n, message) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        case.build(env, top_n=top_n)


async def test_an_assigned_option_takes_effect_on_the_next_call(env, case, mode) -> None:
    items = env.framework.inputs(CORPUS)
    reranker = case.build(env, top_n=None)
    assert len(await call(env, mode, reranker, items)) == len(CORPUS)
    reranker.top_n = 1
    assert len(await call(env, mode, reranker, items)) == 1
    with pytest.raises((TypeError, ValueError), match="top_n"):
        reranker.top_n = 0
    assert reranker.top_n == 1
    option = case.wire_option
    if option is not None:
        setattr(reranker, option.name, option.value)
        assert len(await call(env, mode, reranker, items)) == 1
        assert option.read(env.servers.get(option.server).requests[-1]) == option.value


async def test_a_pickled_reranker_still_works(env, case, mode) -> None:
    items = env.framework.inputs(CORPUS)
    reranker = case.build(env, top_n=3)
    expected = ranking(env, await call(env, mode, reranker, items))
    clone = pickle.loads(pickle.dumps(reranker))
    assert type(clone) is type(reranker) and clone.top_n == 3
    assert ranking(env, await call(env, mode, clone, items)) == expected


def test_the_api_key_is_never_shown(env, case) -> None:
    reranker = case.build(env)
    for shown in (repr(reranker), str(reranker), env.framework.dump(reranker)):
        assert SECRET_KEY not in shown


async def test_with_closes_and_the_reranker_still_works(env, case, mode) -> None:
    own = Servers()  # fresh servers: no connections left open by other tests
    try:
        env = Env(env.framework, own, env.request)
        items = env.framework.inputs(CORPUS)
        reranker = case.build(env, top_n=2)
        scorer = reranker.as_scorer()
        method = "close" if mode == "sync" else "aclose"
        spy = mock.Mock(wraps=getattr(scorer, method))
        setattr(scorer, method, spy)
        if mode == "sync":
            with reranker as entered:
                first = await call(env, mode, entered, items)
        else:
            async with reranker as entered:
                first = await call(env, mode, entered, items)
        assert entered is reranker and spy.call_count == 1
        assert {server.url: server.wait_idle() for server in own.started} == {s.url: 0 for s in own.started}
        assert ranking(env, await call(env, mode, reranker, items)) == ranking(env, first)
        if mode == "sync":
            reranker.close()
        else:
            await reranker.aclose()
    finally:
        own.close()
