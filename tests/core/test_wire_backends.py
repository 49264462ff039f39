"""The wire formats and the backends on them: request bodies, limits, usage and clear errors, against loopback fakes."""

from __future__ import annotations

import asyncio

import pytest

from rerank_kit import ProviderResponseError, ProviderUnavailableError, ProviderRequestError
from rerank_kit.cli.specs import build_scorer, parse_spec
from rerank_kit.scorers.remote.bedrock import BedrockScorer
from rerank_kit.scorers.remote.http import HTTPRerankScorer
from rerank_kit.scorers.remote.jina import JinaScorer
from rerank_kit.scorers.remote.mixedbread import MixedbreadScorer
from rerank_kit.scorers.remote.nvidia import NVIDIAScorer
from rerank_kit.scorers.remote.pinecone import PineconeScorer
from tests.api_servers import SECRET_KEY, overlap_score, scripted, tei_handler
from tests.loopback import LoopbackServer, Reply, Request
from tests.wire_fakes import (
    bedrock_handler,
    jina_handler,
    mixedbread_handler,
    nvidia_handler,
    pinecone_handler,
    vllm_rerank_handler,
    vllm_score_handler,
)

DOCS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
QUERY = "reset password account"
FAST = {"backoff": 0.01, "max_retries": 1}
AWS = {"region_name": "eu-west-1", "aws_access_key_id": "AKIDTESTING", "aws_secret_access_key": SECRET_KEY}


def expected(docs: list[str]) -> list[float]:
    return [overlap_score(QUERY, doc) for doc in docs]


def test_cohere_protocol_body_usage_and_v1_base_url() -> None:
    with LoopbackServer(vllm_rerank_handler()) as server:
        scorer = HTTPRerankScorer(f"{server.url}/v1", protocol="cohere", model="BAAI/bge-reranker-v2-m3",
                                  max_tokens_per_doc=256, truncate_prompt_tokens=-1)
        assert scorer.score(QUERY, DOCS) == expected(DOCS)
    request = server.requests[0]
    assert request.path == "/v1/rerank"
    assert request.json == {"query": QUERY, "documents": DOCS, "top_n": 4, "return_documents": False,
                            "model": "BAAI/bge-reranker-v2-m3", "max_tokens_per_doc": 256, "truncate_prompt_tokens": -1}
    assert scorer.usage.last == {"total_tokens": 28}


def test_cohere_protocol_reads_billed_units_where_the_server_sends_them() -> None:
    def cohere_style(request: Request) -> Reply:
        return Reply(200, {"results": [{"index": i, "relevance_score": 0.5} for i in range(len(DOCS))],
                           "meta": {"billed_units": {"search_units": 1}}})

    with LoopbackServer(cohere_style) as server:
        scorer = HTTPRerankScorer(server.url, protocol="cohere")
        scorer.score(QUERY, DOCS)
    assert scorer.usage.last == {"search_units": 1}


async def test_vllm_score_body_and_usage() -> None:
    with LoopbackServer(vllm_score_handler()) as server:
        scorer = HTTPRerankScorer(server.url, protocol="vllm-score", model="m", truncate_prompt_tokens=128)
        assert await scorer.ascore(QUERY, DOCS) == expected(DOCS)
    assert server.requests[0].path == "/score"
    assert server.requests[0].json == {"text_1": QUERY, "text_2": DOCS, "model": "m", "truncate_prompt_tokens": 128}
    assert scorer.usage.last == {"prompt_tokens": 28, "total_tokens": 28}


@pytest.mark.parametrize(("options", "message"), [
    ({"protocol": "cohere", "raw_scores": True}, "raw_scores applies to protocol 'tei' or 'infinity'"),
    ({"protocol": "tei", "max_tokens_per_doc": 10}, "max_tokens_per_doc applies to protocol 'cohere'"),
    ({"protocol": "infinity", "truncate_prompt_tokens": 10}, "truncate_prompt_tokens applies"),
    ({"protocol": "cohere", "truncate_prompt_tokens": 0}, "-1 or a positive int"),
    ({"path": "rerank"}, "path must start with '/'"),
])
def test_options_of_another_protocol_fail_early(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        HTTPRerankScorer("http://127.0.0.1:9", **options)


def test_a_wrong_protocol_says_what_the_answer_looks_like() -> None:
    scores = {"object": "list", "data": [{"index": i, "object": "score", "score": 0.5} for i in range(len(DOCS))]}
    with LoopbackServer(lambda request: Reply(200, scores)) as server:
        with pytest.raises(ProviderResponseError, match=r"looks like a vLLM /score answer \(protocol='vllm-score'\)"):
            HTTPRerankScorer(server.url, protocol="cohere").score(QUERY, DOCS)
    with LoopbackServer(lambda request: Reply(200, {"results": [{"index": 0, "relevance_score": 1.0}]})) as server:
        with pytest.raises(ProviderResponseError, match="TEI: .*looks like a Cohere-style answer"):
            HTTPRerankScorer(server.url, protocol="tei").score(QUERY, DOCS)


def test_a_server_without_the_protocols_route_says_which_protocol_was_tried() -> None:
    with LoopbackServer(vllm_rerank_handler()) as server:
        with pytest.raises(ProviderRequestError, match=r"speak protocol='vllm-score', POST /score\?"):
            HTTPRerankScorer(server.url, protocol="vllm-score", **FAST).score(QUERY, DOCS)


def test_tei_424_is_retried_and_requests_stay_under_the_payload_limit() -> None:
    failing = Reply(424, {"error": "out of memory", "error_type": "Backend"})
    docs = [f"reset {i} " + "x" * 200_000 for i in range(15)]
    with LoopbackServer(scripted(failing, then=tei_handler())) as server:
        assert HTTPRerankScorer(server.url, **FAST).score(QUERY, docs) == expected(docs)
    assert all(len(request.body) <= 2_000_000 for request in server.requests)
    assert sorted(len(request.json["texts"]) for request in server.requests[1:]) == [6, 9]


@pytest.mark.parametrize(("build", "handler", "limit"), [
    (lambda url: JinaScorer(base_url=url, api_key=SECRET_KEY), jina_handler, 1000),
    (lambda url: NVIDIAScorer(base_url=url), nvidia_handler, 32),
    (lambda url: MixedbreadScorer(base_url=url, api_key=SECRET_KEY), mixedbread_handler, 1000),
    (lambda url: PineconeScorer(base_url=url, api_key=SECRET_KEY), pinecone_handler, 100),
    (lambda url: PineconeScorer("cohere-rerank-3.5", base_url=url, api_key=SECRET_KEY), pinecone_handler, 200),
    (lambda url: BedrockScorer(endpoint_url=url, **AWS), bedrock_handler, 1000),
], ids=["jina", "nvidia", "mixedbread", "pinecone-bge", "pinecone-cohere", "bedrock"])
def test_vendors_split_at_their_documented_limits_and_merge(build, handler, limit) -> None:
    docs = [f"doc {i} reset" if i % 7 == 0 else f"doc {i}" for i in range(limit + limit // 2)]
    with LoopbackServer(handler()) as server:
        scorer = build(server.url)
        assert asyncio.run(scorer.ascore(QUERY, docs)) == expected(docs)
        scorer.close()
    assert len(server.requests) == 2


def test_vendor_request_bodies() -> None:
    with LoopbackServer(jina_handler()) as jina, LoopbackServer(nvidia_handler()) as nim, \
            LoopbackServer(mixedbread_handler()) as mxbai, LoopbackServer(pinecone_handler()) as pine, \
            LoopbackServer(bedrock_handler()) as bedrock:
        JinaScorer("jina-reranker-v3", base_url=jina.url, api_key=SECRET_KEY).score(QUERY, DOCS)
        NVIDIAScorer(base_url=nim.url, truncate="NONE").score(QUERY, DOCS)
        MixedbreadScorer(base_url=mxbai.url, api_key=SECRET_KEY).score(QUERY, DOCS)
        PineconeScorer(base_url=pine.url, api_key=SECRET_KEY, rank_field="chunk", parameters={"truncate": "END"}) \
            .score(QUERY, DOCS)
        BedrockScorer("cohere.rerank-v3-5:0", endpoint_url=bedrock.url, **AWS).score(QUERY, DOCS)
    assert jina.requests[0].json == {"query": QUERY, "documents": DOCS, "top_n": 4, "return_documents": False,
                                     "model": "jina-reranker-v3"}
    assert jina.requests[0].headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert nim.requests[0].json == {"model": "nvidia/llama-3.2-nv-rerankqa-1b-v2", "query": {"text": QUERY},
                                    "passages": [{"text": d} for d in DOCS], "truncate": "NONE"}
    assert "authorization" not in nim.requests[0].headers
    assert mxbai.requests[0].json == {"model": "mixedbread-ai/mxbai-rerank-large-v2", "query": QUERY, "input": DOCS,
                                      "top_k": 4, "return_input": False}
    assert pine.requests[0].json == {"model": "bge-reranker-v2-m3", "query": QUERY, "documents": [{"chunk": d}
                                     for d in DOCS], "rank_fields": ["chunk"], "return_documents": False,
                                     "top_n": 4, "parameters": {"truncate": "END"}}
    assert pine.requests[0].headers["api-key"] == SECRET_KEY
    configuration = bedrock.requests[0].json["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert configuration == {"numberOfResults": 4, "modelConfiguration": {
        "modelArn": "arn:aws:bedrock:eu-west-1::foundation-model/cohere.rerank-v3-5:0"}}
    assert bedrock.requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTESTING/")


def test_bedrock_follows_next_token_pages() -> None:
    first = {"results": [{"index": 2, "relevanceScore": 0.9}, {"index": 1, "relevanceScore": 0.8}],
             "nextToken": "page-2"}
    second = {"results": [{"index": 0, "relevanceScore": 0.1}, {"index": 3, "relevanceScore": 0.2}]}
    with LoopbackServer(scripted(Reply(200, first), then=lambda request: Reply(200, second))) as server:
        scorer = BedrockScorer(endpoint_url=server.url, **AWS)
        assert scorer.score(QUERY, DOCS) == [0.1, 0.8, 0.9, 0.2]
    assert [request.json.get("nextToken") for request in server.requests] == [None, "page-2"]
    assert scorer.usage.last == {"documents": 4}


def test_bedrock_needs_a_region_and_keeps_a_given_model_arn(monkeypatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ValueError, match="region"):
        BedrockScorer(aws_access_key_id="AKIDTESTING", aws_secret_access_key=SECRET_KEY)
    arn = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
    assert BedrockScorer(arn, **AWS).wire.model_arn == arn


def test_keys_and_urls_of_the_vendors(monkeypatch) -> None:
    for name in ("JINA_API_KEY", "NVIDIA_API_KEY", "MXBAI_API_KEY", "PINECONE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for scorer_class in (JinaScorer, MixedbreadScorer, PineconeScorer):
        with pytest.raises(ValueError, match="API key missing"):
            scorer_class()
    with pytest.raises(ValueError, match="NVIDIA_API_KEY"):
        NVIDIAScorer()
    assert NVIDIAScorer(api_key="k").url == \
        "https://ai.api.nvidia.com/v1/retrieval/nvidia/llama-3_2-nv-rerankqa-1b-v2/reranking"
    assert NVIDIAScorer(base_url="http://nim:8000/v1").url == "http://nim:8000/v1/ranking"
    monkeypatch.setenv("JINA_API_KEY", "from-env")
    assert JinaScorer().url == "https://api.jina.ai/v1/rerank"


def test_a_persistent_429_gives_up_after_the_retries() -> None:
    with LoopbackServer(lambda request: Reply(429, {"detail": "slow down"}, headers={"Retry-After": "0"})) as server:
        with pytest.raises(ProviderUnavailableError, match="Mixedbread .*gave up after 2 attempts"):
            MixedbreadScorer(base_url=server.url, api_key=SECRET_KEY, **FAST).score(QUERY, DOCS)
    assert len(server.requests) == 2


def test_cli_http_spec_takes_an_optional_protocol() -> None:
    plain = build_scorer(parse_spec("http:http://localhost:8080"))
    assert (plain.protocol, plain.url) == ("tei", "http://localhost:8080/rerank")
    vllm = build_scorer(parse_spec("http:vllm-score@http://localhost:8000/v1"))
    assert (vllm.protocol, vllm.url) == ("vllm-score", "http://localhost:8000/v1/score")
    with pytest.raises(ValueError, match="protocol"):
        build_scorer(parse_spec("http:soap@http://localhost:8000"))
