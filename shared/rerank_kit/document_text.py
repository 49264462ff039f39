"""The text a reranker reads for a structured document: chosen metadata fields as YAML-style lines, or a template.

Cohere recommends YAML-style ``key: value`` lines for semi-structured documents; the same text works for any
cross-encoder or LLM reranker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

#: The name that stands for the document's own text in ``rank_fields`` and templates.
CONTENT_FIELD = "page_content"


def check_document_text_options(rank_fields: Sequence[str] | None, template: str | None) -> None:
    """Raise early for options that cannot work together or are empty."""
    if rank_fields is not None and template is not None:
        raise ValueError("pass either rank_fields or document_template, not both")
    if rank_fields is not None and (not rank_fields or not all(isinstance(f, str) and f for f in rank_fields)):
        raise ValueError("rank_fields must be a non-empty list of metadata field names")


def document_text(content: str, metadata: Mapping[str, Any], *, rank_fields: Sequence[str] | None = None,
                  template: str | None = None) -> str:
    """The text to score: ``content`` alone, the listed fields as ``field: value`` lines, or ``template`` filled.

    With ``rank_fields`` the document's text comes last (as ``page_content: ...``) unless listed; a field a
    document does not have is left out of its text. A template names fields as ``{title}`` and the text as
    ``{page_content}``; a field it names that a document lacks is an error naming the field.
    """
    if template is not None:
        try:
            return template.format_map({**metadata, CONTENT_FIELD: content})
        except KeyError as missing:
            raise ValueError(f"document_template names {missing}, which this document's metadata lacks") from None
    if rank_fields is None:
        return content
    fields = [*rank_fields, *([] if CONTENT_FIELD in rank_fields else [CONTENT_FIELD])]
    values = {**metadata, CONTENT_FIELD: content}
    return "\n".join(f"{field}: {_yaml_value(values[field])}" for field in fields if field in values)


def _yaml_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text.replace("\n", " ")
