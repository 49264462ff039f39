"""Decoder rerankers (causal LMs scored by an answer token's logit): each known family's model-card recipe as data.

A recipe is the prompt as pieces tokenized separately, in order, exactly as the family's model card does;
one piece ends with ``{document}``, and only the document's tokens in it are ever truncated. Detection
reads the model's name and config (no weights). Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

logger = logging.getLogger("rerank_kit.cross_encoder")

PLACEHOLDER = re.compile(r"\{(query|document|instruction)\}")
#: How the answer position is read: the LM head's answer tokens, or a sequence-classification conversion's head.
Head = Literal["causal", "classifier"]


@dataclass(frozen=True)
class DecoderRecipe:
    """One family's prompt and answer tokens; score logit = ``logit(yes) - logit(no)`` (``no=None``: ``logit(yes)``)."""

    name: str
    #: Pieces tokenized separately (``add_special_tokens=False``); exactly one ends with ``{document}``.
    pieces: tuple[str, ...]
    yes: str
    no: Optional[str]
    #: The instruction when none is given (``None``: the ``{instruction}`` placeholder becomes empty).
    default_instruction: Optional[str] = None
    #: How a given instruction fills ``{instruction}`` (mxbai: ``"instruction: {instruction}\n"``).
    instruction_format: str = "{instruction}"
    #: Whether the tokenizer's BOS token starts the sequence.
    bos: bool = False
    #: The model card's token limit, used when ``max_length`` is not given.
    max_length: Optional[int] = None
    #: Lower-cased substrings of hub names (or local folder names) that identify the family.
    name_patterns: tuple[str, ...] = field(default=(), compare=False)
    #: ``config.model_type`` of the family's causal LM, for renamed local copies.
    model_type: Optional[str] = field(default=None, compare=False)

    @property
    def document_piece(self) -> int:
        """Index of the piece that ends with ``{document}``."""
        return next(i for i, piece in enumerate(self.pieces) if piece.endswith("{document}"))

    def instruction_text(self, instruction: Optional[str]) -> str:
        """What ``{instruction}`` becomes for ``instruction`` (or the family's default)."""
        chosen = self.default_instruction if instruction is None else instruction
        return "" if chosen is None else self.instruction_format.replace("{instruction}", chosen)

    @property
    def uses_instruction(self) -> bool:
        return any("{instruction}" in piece for piece in self.pieces)


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with ``{query}``, ``{document}`` and ``{instruction}`` replaced (values are never re-read)."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


QWEN3_SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
BGE_GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
    "providing a prediction of either 'Yes' or 'No'."
)

FAMILIES: dict[str, DecoderRecipe] = {
    recipe.name: recipe
    for recipe in (
        # Qwen/Qwen3-Reranker-{0.6B,4B,8B}: P(yes) of log-softmax over ["no", "yes"] = sigmoid(yes - no).
        DecoderRecipe(
            "qwen3-reranker",
            pieces=(
                f"<|im_start|>system\n{QWEN3_SYSTEM}<|im_end|>\n<|im_start|>user\n",
                "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}",
                "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            ),
            yes="yes", no="no",
            default_instruction="Given a web search query, retrieve relevant passages that answer the query",
            max_length=8192, name_patterns=("qwen3-reranker",), model_type="qwen3",
        ),
        # mixedbread-ai/mxbai-rerank-{base,large}-v2 (Qwen2): sigmoid(logit("1") - logit("0")).
        DecoderRecipe(
            "mxbai-rerank-v2",
            pieces=(
                f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n",
                "{instruction}query: {query}",
                "\n",
                "document: {document}",
                "\n",
                MXBAI_TASK,
                "<|im_end|>\n<|im_start|>assistant\n",
            ),
            yes="1", no="0", instruction_format="instruction: {instruction}\n",
            max_length=8192, name_patterns=("mxbai-rerank-base-v2", "mxbai-rerank-large-v2"), model_type="qwen2",
        ),
        # BAAI/bge-reranker-v2-gemma: the raw logit of "Yes" (FlagEmbedding's normalize=True is its sigmoid).
        DecoderRecipe(
            "bge-reranker-v2-gemma",
            pieces=("A: {query}", "\n", "B: {document}", "\n", "{instruction}"),
            yes="Yes", no=None, default_instruction=BGE_GEMMA_PROMPT, bos=True,
            max_length=1024, name_patterns=("bge-reranker-v2-gemma",), model_type="gemma",
        ),
    )
}


class PromptTemplate(BaseModel):
    """A decoder reranker prompt for a model rerank-kit does not know: one string and its answer tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str = Field(
        description="Prompt with {query}, {document} and optionally {instruction}; the answer is read after it."
    )
    yes: str = Field(default="yes", min_length=1, description="The answer token meaning relevant.")
    no: Optional[str] = Field(default="no", description="The answer token meaning not relevant; None: logit(yes).")

    @field_validator("template")
    @classmethod
    def _placeholders(cls, template: str) -> str:
        for name in ("query", "document"):
            if "{" + name + "}" not in template:
                raise ValueError(f"prompt_template has no {{{name}}} placeholder: {template!r}")
        if template.count("{document}") != 1:
            raise ValueError("prompt_template must contain {document} exactly once")
        return template

    def recipe(self) -> DecoderRecipe:
        """The template as a recipe: the text through ``{document}``, then the rest, tokenized separately."""
        head, _, tail = self.template.partition("{document}")
        pieces = (head + "{document}",) + ((tail,) if tail else ())
        return DecoderRecipe("custom", pieces=pieces, yes=self.yes, no=self.no)


#: ``prompt_template``: a family name, a template string (answers "yes"/"no") or a :class:`PromptTemplate`.
PromptTemplateOption = Optional[Union[str, PromptTemplate]]


def check_prompt_template(value: Any) -> Any:
    """Validate a ``prompt_template`` option: a known family name, a template string, or a PromptTemplate."""
    if isinstance(value, str) and value not in FAMILIES:
        if not PLACEHOLDER.search(value):
            raise ValueError(
                f"prompt_template {value!r} is neither a known family ({', '.join(FAMILIES)}) "
                "nor a template with {query} and {document}"
            )
        PromptTemplate(template=value)
    return value


def template_recipe(prompt_template: PromptTemplateOption) -> Optional[DecoderRecipe]:
    """The recipe a ``prompt_template`` option names or describes (``None`` when not given)."""
    if prompt_template is None:
        return None
    if isinstance(prompt_template, PromptTemplate):
        return prompt_template.recipe()
    if prompt_template in FAMILIES:
        return FAMILIES[prompt_template]
    return PromptTemplate(template=prompt_template).recipe()


def template_identity(prompt_template: PromptTemplateOption) -> str:
    """A stable text for cache keys: what the option makes the model read."""
    if isinstance(prompt_template, PromptTemplate):
        return prompt_template.model_dump_json()
    return repr(prompt_template)


@dataclass(frozen=True)
class DecoderPrompt:
    """What one scorer asks a shared decoder engine for: the recipe, the instruction and the token limit."""

    recipe: DecoderRecipe
    instruction: Optional[str]
    max_length: Optional[int]


@dataclass(frozen=True)
class DecoderModel:
    """What detection found: the family recipe (``None`` when only a template will tell) and the head to read."""

    recipe: Optional[DecoderRecipe]
    head: Head


def family_by_name(*names: str) -> Optional[DecoderRecipe]:
    """The family whose name pattern occurs in the last part of any of ``names`` (hub ids, folders), else ``None``."""
    lowered = [name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower() for name in names if name]
    for recipe in FAMILIES.values():
        if any(pattern in name for pattern in recipe.name_patterns for name in lowered):
            return recipe
    return None


def detect_decoder(model: str, config: Any, *, templated: bool) -> Optional[DecoderModel]:
    """What decoder reranker ``model`` is (family by name, else model_type, else template), or ``None``.

    A causal LM of no known family without a template is an error naming what is missing; a decoder's
    sequence-classification conversion counts only when its name names a family or a template is given.
    """
    architecture = (getattr(config, "architectures", None) or [""])[0]
    model_type = getattr(config, "model_type", "")
    by_name = family_by_name(model, getattr(config, "_name_or_path", ""))
    if architecture.endswith("ForCausalLM"):
        if by_name is not None:
            return DecoderModel(by_name, "causal")
        by_type = next((r for r in FAMILIES.values() if r.model_type == model_type), None)
        if by_type is not None and not templated:
            logger.info("%s: %s with model_type %r; scoring it as %s", model, architecture, model_type, by_type.name)
        if by_type is not None or templated:
            return DecoderModel(by_type, "causal")
        raise ValueError(
            f"{model} is a causal language model ({architecture}, model_type {model_type!r}) of no known reranker "
            f"family ({', '.join(FAMILIES)}): give prompt_template='...{{query}}...{{document}}...' (with its "
            "answer tokens as PromptTemplate(template=..., yes=..., no=...)) or prompt_template=<family name>"
        )
    decoder_classifier = architecture.endswith("ForSequenceClassification") and _decoder_only(model_type)
    if decoder_classifier and (by_name is not None or templated):
        return DecoderModel(by_name, "classifier")
    if templated:
        raise ValueError(f"prompt_template is for decoder rerankers; {model} is a {architecture or model_type}")
    return None


def _decoder_only(model_type: str) -> bool:
    """A model type with a causal LM and no masked LM in transformers (Qwen, Llama, Gemma; not BERT)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
