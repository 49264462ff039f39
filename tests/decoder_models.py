"""Tiny random decoder rerankers built offline: Qwen3, Qwen2 (mxbai-style), Gemma, Llama and a Qwen3 seq-cls conversion.

Each gets a byte-level BPE tokenizer trained here on the family prompts and the test words, with the chat
special tokens the templates need and single-token answers (yes, no, Yes, No, 1, 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rerank_kit.scorers.local.decoder_families import FAMILIES
from tests.conftest import WORDS

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<bos>", "<eos>", "<pad>"]
ANSWERS = ["yes", "no", "Yes", "No", "1", "0"]
#: Which causal LM architecture each family's tiny model has (``"llama"``: a model of no known family).
ARCHITECTURES = {"qwen3-reranker": "qwen3", "mxbai-rerank-v2": "qwen2", "bge-reranker-v2-gemma": "gemma",
                 "llama": "llama"}


def build_tokenizer(path: Path) -> Any:
    """Train and save a byte-level BPE tokenizer; returns it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [piece for recipe in FAMILIES.values() for piece in recipe.pieces]
    corpus += [str(recipe.default_instruction) for recipe in FAMILIES.values()]
    corpus += [" ".join(WORDS)] * 20 + ["\n".join(ANSWERS)] * 50
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", model_max_length=512
    )
    for answer in ANSWERS:
        assert len(fast(answer, add_special_tokens=False)["input_ids"]) == 1, answer
    fast.save_pretrained(path)
    return fast


def _config(architecture: str, vocab_size: int, tokenizer: Any) -> Any:
    import transformers

    shape = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=512, initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    configs = {"qwen3": transformers.Qwen3Config, "qwen2": transformers.Qwen2Config,
               "gemma": transformers.GemmaConfig, "llama": transformers.LlamaConfig}
    if architecture == "gemma":
        shape["num_key_value_heads"] = 1  # multi-query, as Gemma 2B
    return configs[architecture](**shape)


def build_decoder_reranker(path: Path, family: str, seed: int = 0) -> Path:
    """Save a 2-layer causal LM of ``family``'s architecture (GQA) with random weights to ``path``."""
    import torch
    from transformers import AutoModelForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(ARCHITECTURES[family], len(tokenizer), tokenizer))
    model.save_pretrained(path)
    return path


def build_seq_cls_conversion(causal: Path, path: Path) -> Path:
    """The sequence-classification conversion of a Qwen3 reranker: one logit = LM head row "yes" minus row "no"."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(causal)
    lm = AutoModelForCausalLM.from_pretrained(causal)
    config = lm.config
    config.num_labels = 1
    config.architectures = ["Qwen3ForSequenceClassification"]
    classifier = Qwen3ForSequenceClassification(config)
    classifier.model.load_state_dict(lm.model.state_dict())
    yes, no = (tokenizer.convert_tokens_to_ids(t) for t in ("yes", "no"))
    with torch.no_grad():
        classifier.score.weight.copy_(lm.lm_head.weight[yes] - lm.lm_head.weight[no])
    classifier.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
