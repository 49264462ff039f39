"""Reading JSONL or Parquet rows into Ray and writing one file per query bucket (Parquet, JSONL, TREC) with pyarrow.

Paths are local or anything ``pyarrow.fs`` opens (``s3://``, ``gs://``, ``hdfs://``, ``abfs://``). A bucket's
file is written under a temporary name and moved into place, so a file that exists is complete.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from rerank_kit._optional import require

InputFormat = Literal["jsonl", "parquet"]
OutputFormat = Literal["parquet", "jsonl", "trec"]
OUTPUT_FORMATS: tuple[str, ...] = ("parquet", "jsonl", "trec")
RANKED_COLUMNS = ("query_id", "doc_id", "score", "rank")
ERROR_COLUMNS = ("query_id", "doc_id", "error")
EXTENSIONS = {"parquet": "parquet", "jsonl": "jsonl", "trec": "trec"}
MANIFEST = "_rerank_kit.json"
ERRORS = "errors"
TREC_RUN = "run.trec"
RUN_NAME = "rerank-kit"


def input_format(path: str, given: str | None = None) -> InputFormat:
    """``given``, else the format of ``path``'s extension (``.parquet``/``.pq``, ``.jsonl``/``.json``/``.ndjson``)."""
    if given is not None:
        if given not in ("jsonl", "parquet"):
            raise ValueError(f"input format must be jsonl or parquet, got {given!r}")
        return given  # type: ignore[return-value]
    name = path.rstrip("/").lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path!r} from its name; give --input-format jsonl or parquet")


def read_rows(path: str, fmt: str | None = None) -> Any:
    """A Ray Dataset of the rows in ``path`` (a file, a folder of files, or a URI)."""
    data = require("ray.data", "ray")
    if input_format(path, fmt) == "parquet":
        return data.read_parquet(path)
    return data.read_json(path, lines=True)


@dataclass(frozen=True)
class Output:
    """An output folder on its pyarrow filesystem: ``part-NNNNN.EXT`` per bucket, ``errors/part-NNNNN.jsonl``."""

    uri: str
    fmt: OutputFormat

    def __post_init__(self) -> None:
        if self.fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {self.fmt!r}")

    @property
    def filesystem(self) -> Any:
        return self._resolved[0]

    @property
    def root(self) -> str:
        return self._resolved[1]

    @cached_property
    def _resolved(self) -> tuple[Any, str]:
        fs = require("pyarrow.fs", "ray")
        if "://" not in self.uri:
            return fs.LocalFileSystem(), os.path.abspath(self.uri)
        filesystem, root = fs.FileSystem.from_uri(self.uri)
        return filesystem, root.rstrip("/")

    def part(self, bucket: int) -> str:
        return f"{self.root}/part-{bucket:05d}.{EXTENSIONS[self.fmt]}"

    def errors(self, bucket: int) -> str:
        return f"{self.root}/{ERRORS}/part-{bucket:05d}.jsonl"

    def done_buckets(self) -> set[int]:
        """Buckets whose part file exists and that left no errors (those are redone, so a rerun retries them)."""
        written = self._buckets(self.root, EXTENSIONS[self.fmt])
        return written - self._buckets(f"{self.root}/{ERRORS}", "jsonl")

    def _buckets(self, folder: str, extension: str) -> set[int]:
        fs = require("pyarrow.fs", "ray")
        pattern = re.compile(rf"part-(\d{{5}})\.{extension}")
        infos = self.filesystem.get_file_info(fs.FileSelector(folder, allow_not_found=True))
        return {int(match.group(1)) for info in infos if (match := pattern.fullmatch(info.base_name))}

    def check_manifest(self, settings: dict[str, Any]) -> None:
        """Write the run's settings on the first run; on a rerun refuse settings that would mix two runs' rows."""
        fs = require("pyarrow.fs", "ray")
        path = f"{self.root}/{MANIFEST}"
        if self.filesystem.get_file_info(path).type != fs.FileType.NotFound:
            with self.filesystem.open_input_stream(path) as stream:
                written = json.loads(stream.read().decode("utf-8"))
            changed = {key: (written.get(key), value) for key, value in settings.items() if written.get(key) != value}
            if changed:
                detail = ", ".join(f"{key} {old!r} (now {new!r})" for key, (old, new) in changed.items())
                raise ValueError(f"{self.uri} holds a run with {detail}; rerun with the same settings to resume, "
                                 "or write to a new output")
            return
        self.filesystem.create_dir(self.root, recursive=True)
        _write_bytes(self.filesystem, path, json.dumps(settings, indent=2).encode("utf-8"))

    def write_bucket(self, bucket: int, rows: Any) -> tuple[int, int]:
        """Write one bucket's ranked rows and its error rows (or remove stale ones); returns (ranked, errors)."""
        pc = require("pyarrow.compute", "ray")
        failed = pc.is_valid(rows.column("error"))
        ranked, errors = rows.filter(pc.invert(failed)).select(list(RANKED_COLUMNS)), rows.filter(failed)
        fs = require("pyarrow.fs", "ray")
        if errors.num_rows:
            self.filesystem.create_dir(f"{self.root}/{ERRORS}", recursive=True)
            _write_bytes(self.filesystem, self.errors(bucket), _jsonl(errors.select(list(ERROR_COLUMNS))))
        elif self.filesystem.get_file_info(self.errors(bucket)).type != fs.FileType.NotFound:
            self.filesystem.delete_file(self.errors(bucket))
        _write_bytes(self.filesystem, self.part(bucket), self._encoded(ranked))
        return ranked.num_rows, errors.num_rows

    def _encoded(self, ranked: Any) -> bytes:
        if self.fmt == "parquet":
            pa, pq = require("pyarrow", "ray"), require("pyarrow.parquet", "ray")
            sink = pa.BufferOutputStream()
            pq.write_table(ranked, sink)
            return sink.getvalue().to_pybytes()
        if self.fmt == "jsonl":
            return _jsonl(ranked)
        lines = (f"{row['query_id']} Q0 {row['doc_id']} {row['rank']} {row['score']!r} {RUN_NAME}\n"
                 for row in ranked.sort_by([("query_id", "ascending"), ("rank", "ascending")]).to_pylist())
        return "".join(lines).encode("utf-8")

    def combine_trec(self) -> str:
        """Concatenate every bucket's TREC lines into one ``run.trec`` (what trec_eval and ranx read)."""
        parts = sorted(self._buckets(self.root, "trec"))
        body = bytearray()
        for bucket in parts:
            with self.filesystem.open_input_stream(self.part(bucket)) as stream:
                body += stream.read()
        path = f"{self.root}/{TREC_RUN}"
        _write_bytes(self.filesystem, path, bytes(body))
        return path


def _jsonl(table: Any) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist()).encode("utf-8")


def _write_bytes(filesystem: Any, path: str, data: bytes) -> None:
    """Write under a temporary name, then move into place: a reader never sees half a file."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with filesystem.open_output_stream(temporary) as stream:
        stream.write(data)
    filesystem.move(temporary, path)
