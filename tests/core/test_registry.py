"""The backend registry is the one list of backends: package exports, both adapters and the CLI read it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import langchain_rerankers
import llamaindex_rerankers
import rerank_kit
from rerank_kit.backends import BACKENDS, available_backends, cli_backends
from rerank_kit.cli.main import main
from rerank_kit.cli.specs import parse_spec, spec_help

ROWS = {backend.rerank_class: backend for backend in BACKENDS}


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.rerank_class)
def test_every_backend_is_exported_by_the_core_and_both_adapters(backend) -> None:
    assert getattr(rerank_kit, backend.scorer_name) is backend.scorer_class
    for package in (langchain_rerankers, llamaindex_rerankers):
        cls = getattr(package, backend.rerank_class)
        assert backend.rerank_class in package.__all__
        assert cls.__module__ == package.__name__ and cls.backend is backend
        assert set(backend.options_class.model_fields) <= set(cls.model_fields)
        assert getattr(package, backend.rerank_class) is cls  # built once


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.rerank_class)
def test_adapter_defaults_are_the_options_defaults(backend) -> None:
    for package in (langchain_rerankers, llamaindex_rerankers):
        fields = getattr(package, backend.rerank_class).model_fields
        for name, info in backend.options_class.model_fields.items():
            assert fields[name].default == info.default and fields[name].description == info.description


def test_available_backends_reports_every_row() -> None:
    rows = available_backends()
    assert [row["rerank_class"] for row in rows] == [backend.rerank_class for backend in BACKENDS]
    cohere = next(row for row in rows if row["name"] == "cohere")
    assert cohere["installed"] is True
    assert cohere["install"] == 'pip install "rerank-kit[cohere]"'
    assert cohere["default_model"] == "rerank-v3.5"
    assert cohere["key_env_vars"] == ["CO_API_KEY", "COHERE_API_KEY"]
    assert next(row for row in rows if row["name"] == "claude")["key_env_vars"] == ["ANTHROPIC_API_KEY"]


def test_a_missing_extra_is_reported_as_not_installed(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "voyageai", None)
    voyage = next(row for row in available_backends() if row["name"] == "voyage")
    assert voyage["installed"] is False and voyage["install"] == 'pip install "rerank-kit[voyage]"'


def test_backends_command_prints_a_table_and_json(capsys) -> None:
    assert main(["backends"]) == 0
    table = capsys.readouterr().out
    for backend in BACKENDS:
        assert backend.rerank_class in table
    assert 'pip install "rerank-kit[anthropic]"' in table
    assert main(["backends", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(available_backends()))


def test_backends_command_works_without_the_optional_extras() -> None:
    blocked = "import sys; [sys.modules.__setitem__(m, None) for m in ('cohere', 'voyageai', 'anthropic', 'torch', " \
              "'sentence_transformers', 'httpx')]; from rerank_kit.cli.main import main; sys.exit(main(['backends']))"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no" in done.stdout.split() and "Traceback" not in done.stderr


def test_cli_specs_come_from_the_registry() -> None:
    assert spec_help().split(", ")[1:] == [
        f"{b.name}:{'URL' if b.spec_option == 'base_url' else 'MODEL'}" for b in cli_backends()
    ]
    for backend in cli_backends():
        assert parse_spec(f"{backend.name}:x").kind == backend.name
    with pytest.raises(ValueError, match="use one of: none, cross-encoder"):
        parse_spec("acme:model")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.requires], ids=lambda backend: backend.rerank_class)
def test_a_missing_extra_is_named_at_construction_not_first_call(backend, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, backend.requires[0], None)
    with pytest.raises(ImportError, match=f'pip install "rerank-kit\\[{backend.extra}\\]"'):
        backend.scorer_class()


@pytest.mark.parametrize(("package", "module", "extra"), [
    ("langchain_rerankers", "langchain_core", "langchain"),
    ("llamaindex_rerankers", "llama_index.core", "llamaindex"),
])
def test_importing_an_adapter_without_its_framework_names_the_extra(package, module, extra) -> None:
    code = f"import sys; sys.modules[{module!r}] = None; import {package}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and f'pip install "rerank-kit[{extra}]"' in done.stderr
