"""``rerank_dataset``: rerank a Ray Dataset of (query, candidate) rows on actors that each load the model once.

Rows are keyed by a hash bucket of their query id and sorted into one block per bucket, so every query's candidates
reach one actor together; the actor ranks a bucket's queries ``queries_per_batch`` at a time with ``rerank_many``
(local models pack those queries' pairs into the engine's token-budget batches; rerank APIs send them concurrently).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rerank_kit._optional import require
from rerank_kit.batch.groups import (
    BUCKET,
    FIRST_STAGE,
    INPUT_COLUMNS,
    QueryGroup,
    RankedRows,
    bucket_of,
    chunks,
    query_groups,
)
from rerank_kit.batch.rate_limit import limit_requests, rate_limiter
from rerank_kit.errors import RerankError
from rerank_kit.options import Normalize
from rerank_kit.reranker import Reranker
from rerank_kit.results import RerankResult
from rerank_kit.scorer import Scorer
from rerank_kit.validation import check_positive_int

#: Errors that fail one query (after the scorer's own retries), not the job: its rows become error rows.
QUERY_ERRORS = (RerankError, ValueError)


@dataclass(frozen=True)
class RerankSettings:
    """What every actor needs: the reranker (a CLI spec or a scorer, which pickles as its options) and the policy."""

    reranker: str | Scorer
    top_n: int | None = None
    normalize: Normalize = "none"
    score_threshold: float | None = None
    text_column: str = "text"
    queries_per_batch: int = 32
    retries: int = 1
    #: Handles of the optional rate-limit and progress actors.
    rate_limiter: Any = None
    tally: Any = None

    def __post_init__(self) -> None:
        check_positive_int("queries_per_batch", self.queries_per_batch)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {self.retries!r}")


def build_reranker(settings: RerankSettings) -> Reranker:
    """The reranker of ``settings``, its API requests paced by the rate limiter when there is one."""
    scorer = settings.reranker
    if isinstance(scorer, str):
        from rerank_kit.cli.specs import build_scorer, parse_spec

        scorer = build_scorer(parse_spec(scorer))
        if scorer is None:
            raise ValueError("batch reranking needs a reranker other than 'none'")
    if settings.rate_limiter is not None and not limit_requests(scorer, settings.rate_limiter):
        raise ValueError(f"max_requests_per_second applies to API backends; {scorer.name} sends no requests")
    return Reranker(scorer, top_n=settings.top_n, normalize=settings.normalize,
                    score_threshold=settings.score_threshold, cache=False)


class RerankActor:
    """A Ray actor: builds the reranker once, then ranks each bucket of whole queries it is given into output rows."""

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings
        self.reranker = build_reranker(settings)
        # Scorers with the default one-query-at-a-time score_many (rerank APIs) run their queries concurrently.
        self.concurrent = type(self.reranker.scorer).score_many is Scorer.score_many

    def __call__(self, block: Any) -> Any:
        return self.ranked_rows(block).table()

    def ranked_rows(self, block: Any) -> RankedRows:
        """Every row of ``block`` ranked (or marked with its error), query by query."""
        rows = RankedRows(block.schema)
        for chunk in chunks(query_groups(block, self.settings.text_column), self.settings.queries_per_batch):
            for group, outcome in zip(chunk, self.rank(chunk)):
                rows.add(group, outcome)
            if self.settings.tally is not None:
                self.settings.tally.add.remote(sum(group.size for group in chunk))
        return rows

    def rank(self, groups: Sequence[QueryGroup]) -> list[list[RerankResult] | str]:
        """Each group's results, or the reason it failed; a failing call is retried query by query."""
        scorable = [group for group in groups if group.problem is None]
        outcomes: dict[int, list[RerankResult] | str] = {id(g): str(g.problem) for g in groups if g.problem}
        try:
            outcomes.update(zip(map(id, scorable), self._rerank([(g.query, g.texts) for g in scorable])))
        except QUERY_ERRORS:
            outcomes.update((id(group), self._rank_alone(group)) for group in scorable)
        return [outcomes[id(group)] for group in groups]

    def _rank_alone(self, group: QueryGroup) -> list[RerankResult] | str:
        failure: Exception | None = None
        for _ in range(1 + self.settings.retries):
            try:
                return self._rerank([(group.query, group.texts)])[0]
            except QUERY_ERRORS as error:
                failure = error
        return f"{type(failure).__name__}: {failure}"

    def _rerank(self, requests: list[tuple[str, list[str]]]) -> list[list[RerankResult]]:
        if not requests:
            return []
        if self.concurrent:
            from rerank_kit.scorers.remote.io_loop import run_sync

            return run_sync(self.reranker.arerank_many(requests))
        return self.reranker.rerank_many(requests)


def rerank_dataset(
    dataset: Any,
    reranker: str | Scorer,
    *,
    top_n: int | None = None,
    normalize: Normalize = "none",
    score_threshold: float | None = None,
    text_column: str = "text",
    actors: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    queries_per_batch: int = 32,
    buckets: int = 64,
    retries: int = 1,
    max_requests_per_second: float | None = None,
) -> Any:
    """Rerank a Ray Dataset of ``query_id, query, doc_id, text[, first_stage_score]`` rows on a pool of actors.

    The rows are split into ``buckets`` blocks by a hash of ``query_id`` when called (one shuffle, materialized); the
    scoring is lazy, like Ray Data. An actor takes a bucket at a time: raise ``buckets`` until one fits its memory.

    Returns a Dataset of ``query_id, doc_id, score, rank, error``: per query the best ``top_n`` candidates with their
    1-based rank, or, for a query that failed after every retry (or a row with a null text), every row with
    ``score`` and ``rank`` null and the reason in ``error``. ``reranker`` is a CLI spec (``cross-encoder:MODEL``) or a
    scorer. ``actors`` actors each reserve ``num_cpus`` and ``num_gpus``; ``max_requests_per_second`` caps an API
    backend's requests across all of them. Candidates are scored in first-stage order (``first_stage_score``
    descending, then ``doc_id``), which also breaks ties.
    """
    settings = rerank_settings(reranker, top_n=top_n, normalize=normalize, score_threshold=score_threshold,
                               text_column=text_column, queries_per_batch=queries_per_batch, retries=retries,
                               max_requests_per_second=max_requests_per_second)
    return map_buckets(bucketed_rows(dataset, buckets, text_column), RerankActor, settings, actors=actors,
                       num_cpus=num_cpus, num_gpus=num_gpus)


def rerank_settings(reranker: str | Scorer, *, max_requests_per_second: float | None = None, tally: Any = None,
                    **policy: Any) -> RerankSettings:
    """Settings checked on the driver (spec, options, that the scorer pickles) before any actor starts."""
    cloudpickle = require("ray.cloudpickle", "ray")
    if not isinstance(reranker, (str, Scorer)):
        raise TypeError(f"reranker must be a CLI spec or a rerank_kit.Scorer, got {type(reranker).__name__}")
    limiter = None if max_requests_per_second is None else rate_limiter(max_requests_per_second)
    settings = RerankSettings(reranker=reranker, rate_limiter=limiter, tally=tally, **policy)
    # What every actor will do, once here: a bad spec or option, or a scorer that does not pickle, fails now.
    build_reranker(cloudpickle.loads(cloudpickle.dumps(replace(settings, tally=None))))
    return settings


def bucketed_rows(dataset: Any, buckets: int, text_column: str = "text", skip: Collection[int] = ()) -> Any:
    """Rows keyed by query bucket, one block per bucket (a sort on given boundaries, so no sampling), materialized,
    without the buckets in ``skip``; the actor pool, started afterwards, never waits for CPUs the shuffle holds."""
    check_positive_int("buckets", buckets)
    check_columns(dataset, text_column)
    keyed = dataset.map_batches(_with_bucket, batch_format="pyarrow",
                                fn_kwargs={"buckets": buckets, "skip": frozenset(skip)})
    return keyed.sort(BUCKET, boundaries=list(range(1, buckets))).materialize()


def map_buckets(
    bucketed: Any,
    actor_class: type,
    settings: RerankSettings,
    *,
    actors: int,
    num_cpus: float,
    num_gpus: float,
    **constructor_kwargs: Any,
) -> Any:
    """Map each bucket (a block) on a pool of ``actors`` ``actor_class`` actors."""
    data = require("ray.data", "ray")
    check_positive_int("actors", actors)
    return bucketed.map_batches(
        actor_class,
        batch_size=None,
        batch_format="pyarrow",
        compute=data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"settings": settings, **constructor_kwargs},
        num_cpus=num_cpus,
        num_gpus=num_gpus or None,
    )


def check_columns(dataset: Any, text_column: str) -> None:
    """Fail on the driver, naming them, when input columns are missing."""
    columns = dataset.columns()
    if columns is None:
        return
    wanted = [name if name != "text" else text_column for name in INPUT_COLUMNS]
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise ValueError(f"input rows lack column(s) {', '.join(missing)}; each row needs "
                         f"{', '.join(wanted)} (and optionally {FIRST_STAGE}); found: {', '.join(columns)}")


def _with_bucket(batch: Any, *, buckets: int, skip: frozenset[int]) -> Any:
    """The batch with its bucket column, without the rows of buckets in ``skip``."""
    pa = require("pyarrow", "ray")
    keys = [bucket_of(query_id, buckets) for query_id in batch.column("query_id").to_pylist()]
    batch = batch.append_column(BUCKET, pa.array(keys, type=pa.int64()))
    if skip:
        batch = batch.filter(pa.array([key not in skip for key in keys], type=pa.bool_()))
    return batch
