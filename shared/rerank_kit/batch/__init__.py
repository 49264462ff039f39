"""Batch reranking of large collections on Ray Data (the ``ray`` extra); nothing else in rerank_kit imports Ray.

:func:`rerank_dataset` turns a Ray Dataset of (query, candidate) rows into ranked rows; :func:`rerank_files` runs
it from files to one output file per query bucket and resumes an interrupted run.
"""

from __future__ import annotations

from rerank_kit.batch.dataset import RerankActor, RerankSettings, rerank_dataset
from rerank_kit.batch.files import RunSummary, rerank_files
from rerank_kit.batch.groups import INPUT_COLUMNS, OUTPUT_COLUMNS, bucket_of
from rerank_kit.batch.io import read_rows

__all__ = ["INPUT_COLUMNS", "OUTPUT_COLUMNS", "RerankActor", "RerankSettings", "RunSummary", "bucket_of",
           "read_rows", "rerank_dataset", "rerank_files"]
