"""`rerank-kit eval` on bad data: one `rerank-kit: error:` line naming file, line and field, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_kit.cli.beir import DataError, load_beir
from rerank_kit.cli.main import main

EXIT_CODE = 1  # main()'s code for every expected failure (test_cli.py pins it for a missing dataset too)


def _jsonl(*rows: object) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


CORPUS = [{"_id": "d1", "title": "", "text": "apple banana"}, {"_id": "d2", "text": "banana bread"},
          {"_id": "d3", "title": "cars", "text": "engine repair"}]
QUERIES = [{"_id": "q1", "text": "banana"}, {"_id": "q2", "text": "engine"}]
GOOD = {
    "corpus.jsonl": _jsonl(*CORPUS),
    "queries.jsonl": _jsonl(*QUERIES),
    "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t1\n",
    "run.trec": "q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\nq2 Q0 d3 1 3.0 t\n",
}


def _corpus_line_2(row: object) -> dict[str, str]:
    return {"corpus.jsonl": _jsonl(CORPUS[0], row, CORPUS[2])}


def _query_line(number: int, row: object) -> dict[str, str]:
    rows: list[object] = list(QUERIES)
    rows[number - 1] = row
    return {"queries.jsonl": _jsonl(*rows)}


def _qrels_line_3(line: str) -> dict[str, str]:
    return {"qrels/test.tsv": f"query-id\tcorpus-id\tscore\nq1\td1\t1\n{line}\nq2\td3\t1\n"}


def _run_line_2(line: str) -> dict[str, str]:
    return {"run.trec": f"q1 Q0 d1 1 2.0 t\n{line}\nq2 Q0 d3 1 3.0 t\n"}


# (files to overwrite, or None to delete; whether --run is passed; file named; line named; text naming the field)
CASES = [
    pytest.param(_corpus_line_2({"_id": "d2", "text": 42}), False, "corpus.jsonl", 2, "field 'text'", id="text-number"),
    pytest.param(_corpus_line_2({"_id": "d2", "text": ["a"]}), False, "corpus.jsonl", 2, "field 'text'",
                 id="text-list"),
    pytest.param(_corpus_line_2({"_id": "d2", "text": {"a": 1}}), False, "corpus.jsonl", 2, "field 'text'",
                 id="text-dict"),
    pytest.param(_corpus_line_2({"_id": "d2", "text": True}), False, "corpus.jsonl", 2, "field 'text'",
                 id="text-bool"),
    pytest.param(_corpus_line_2({"_id": "d2", "text": "x", "title": ["t"]}), False, "corpus.jsonl", 2,
                 "field 'title'", id="title-list"),
    pytest.param(_corpus_line_2({"text": "x"}), False, "corpus.jsonl", 2, "field '_id'", id="corpus-missing-id"),
    pytest.param(_corpus_line_2({"_id": None, "text": "x"}), False, "corpus.jsonl", 2, "field '_id'",
                 id="corpus-null-id"),
    pytest.param(_corpus_line_2({"_id": "d2"}), False, "corpus.jsonl", 2, "field 'text'", id="corpus-missing-text"),
    pytest.param(_corpus_line_2(["d2", "x"]), False, "corpus.jsonl", 2, "JSON object", id="corpus-not-an-object"),
    pytest.param(_query_line(2, {"_id": "q2", "text": None}), False, "queries.jsonl", 2, "field 'text'",
                 id="query-text-null"),
    pytest.param(_query_line(2, {"_id": "q2", "text": 7}), False, "queries.jsonl", 2, "field 'text'",
                 id="query-text-number"),
    pytest.param(_query_line(1, {"text": "banana"}), False, "queries.jsonl", 1, "field '_id'", id="query-missing-id"),
    pytest.param({"corpus.jsonl": _jsonl(*CORPUS[:2]) + '{"_id": "d3", "text": }\n'}, False, "corpus.jsonl", 3,
                 "not valid JSON", id="corpus-invalid-json"),
    pytest.param({"queries.jsonl": _jsonl(QUERIES[0]) + '{"_id": "q2"\n'}, False, "queries.jsonl", 2,
                 "not valid JSON", id="queries-invalid-json"),
    pytest.param({"corpus.jsonl": _jsonl(CORPUS[0]).encode() + b'{"_id": "d2", "text": "caf\xe9"}\n'}, False,
                 "corpus.jsonl", 2, "UTF-8", id="corpus-not-utf8"),
    pytest.param(_qrels_line_3("q1\td2"), False, "qrels/test.tsv", 3, "3 tab-separated columns", id="qrels-2-columns"),
    pytest.param(_qrels_line_3("q1\td2\t1\textra"), False, "qrels/test.tsv", 3, "3 tab-separated columns",
                 id="qrels-4-columns"),
    pytest.param(_qrels_line_3("q1\td2\thigh"), False, "qrels/test.tsv", 3, "column 'score'", id="qrels-score-word"),
    pytest.param(_qrels_line_3("q1\td2\t0.5"), False, "qrels/test.tsv", 3, "column 'score'", id="qrels-score-float"),
    pytest.param(_qrels_line_3("q9\td2\t1"), False, "qrels/test.tsv", 3, "column 'query-id'", id="qrels-unknown-query"),
    pytest.param(_qrels_line_3("q1\td9\t1"), False, "qrels/test.tsv", 3, "column 'corpus-id'", id="qrels-unknown-doc"),
    pytest.param(_run_line_2("q1 Q0 d9 2 1.0 t"), True, "run.trec", 2, "column 'docid'", id="run-unknown-doc"),
    pytest.param(_run_line_2("q9 Q0 d2 2 1.0 t"), True, "run.trec", 2, "column 'qid'", id="run-unknown-query"),
    pytest.param(_run_line_2("q1 Q0 d2 2 high t"), True, "run.trec", 2, "column 'score'", id="run-score-word"),
    pytest.param(_run_line_2("q1 Q0 d2 2 nan t"), True, "run.trec", 2, "column 'score'", id="run-score-nan"),
    pytest.param(_run_line_2("q1 Q0 d2 1.0"), True, "run.trec", 2, "6 whitespace-separated columns",
                 id="run-4-columns"),
    pytest.param({"corpus.jsonl": "\n"}, False, "corpus.jsonl", None, "no rows", id="corpus-empty"),
    pytest.param({"queries.jsonl": ""}, False, "queries.jsonl", None, "no rows", id="queries-empty"),
    pytest.param({"qrels/test.tsv": "query-id\tcorpus-id\tscore\n"}, False, "qrels/test.tsv", None,
                 "no judgements", id="qrels-header-only"),
    pytest.param({"corpus.jsonl": None}, False, "corpus.jsonl", None, "not found", id="no-corpus"),
    pytest.param({"queries.jsonl": None}, False, "queries.jsonl", None, "not found", id="no-queries"),
    pytest.param({"qrels/test.tsv": None}, False, "qrels/test.tsv", None, "not found", id="no-qrels"),
    pytest.param({"run.trec": None}, True, "run.trec", None, "not found", id="no-run-file"),
    pytest.param({".": None}, False, "corpus.jsonl", None, "not found", id="no-dataset-folder"),
]


def _write(folder: Path, files: dict[str, str | bytes | None]) -> None:
    for name, content in files.items():
        path = folder / name
        if content is None:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A tiny valid BEIR dataset (with a run file) for each case to break in one place."""
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder, dict(GOOD))
    return folder


def _args(folder: Path, out: Path, run: bool) -> list[str]:
    return ["eval", str(folder), "--no-progress", "--out", str(out), *(["--run", str(folder / "run.trec")] * run)]


@pytest.mark.parametrize(("files", "run", "name", "line", "field"), CASES)
def test_bad_data_is_one_error_line(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    files: dict[str, str | bytes | None], run: bool, name: str, line: int | None, field: str,
) -> None:
    _write(folder, files)

    code = main(_args(folder, tmp_path / "out", run))

    captured = capsys.readouterr()
    assert code == EXIT_CODE
    assert "Traceback" not in captured.err + captured.out
    (message,) = captured.err.splitlines()
    assert message.startswith("rerank-kit: error: ")
    where = str(folder / name) + (f":{line}:" if line is not None else "")
    assert where in message
    assert field in message


def test_the_installed_command_prints_no_traceback(folder: Path, tmp_path: Path) -> None:
    _write(folder, _corpus_line_2({"_id": "d2", "text": 42}))

    done = subprocess.run([sys.executable, "-m", "rerank_kit.cli.main", *_args(folder, tmp_path / "out", False)],
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == EXIT_CODE
    assert done.stderr.splitlines() == [
        f"rerank-kit: error: {folder / 'corpus.jsonl'}:2: field 'text' must be a string, got number 42"
    ]


@pytest.mark.parametrize("run", [False, True], ids=["bm25", "run-file"])
def test_good_data_still_evaluates(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], run: bool) -> None:
    # accepted as before: an integer _id, a null corpus text (the title alone), a missing or null title
    _write(folder, {"corpus.jsonl": _jsonl(*CORPUS, {"_id": 4, "title": "piano", "text": None},
                                           {"_id": "d5", "title": None, "text": "piano lessons"})})

    assert main(_args(folder, tmp_path / "out", run)) == 0
    assert capsys.readouterr().err == ""
    assert load_beir(folder).corpus["4"] == "piano"


def test_load_beir_raises_data_error_with_path_and_line(folder: Path) -> None:
    _write(folder, _query_line(2, {"_id": "q2", "text": None}))

    with pytest.raises(DataError, match="field 'text' must be a string, got null") as raised:
        load_beir(folder)

    assert isinstance(raised.value, ValueError)
    assert (raised.value.path, raised.value.line) == (folder / "queries.jsonl", 2)
