"""Teachers and students: loading any HF encoder classifier, finding its layer list, and cutting a student from it."""

from __future__ import annotations

import contextlib
import copy
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import eager_attention_forward
from transformers.utils import logging as hf_logging

from .config import ConfigError
from .data import LABELS
from .errors import first_line
from .hub import download_token, hub_error, resolve_model

hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected: the head is fine-tuned
hf_logging.disable_progress_bar()  # our own progress reporting covers loading and saving
HEAD_MODULES = ["classifier", "pre_classifier", "pooler"]  # kept in full precision when the teacher is 8-bit


def load_model_config(name: str) -> tuple[str, PretrainedConfig]:
    """The resolved source and config of a model; refuses models that need remote code."""
    source = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False, token=download_token())
    except ValueError as err:
        if "trust_remote_code" in str(err) or "custom code" in str(err):
            raise remote_code_refused(name) from None
        raise ConfigError(f"cannot read the config of {name}: {first_line(err)}") from None
    except OSError as err:
        raise hub_error(f"model {name!r}", err) from None
    if getattr(config, "auto_map", None):
        raise remote_code_refused(name)
    if not getattr(config, "num_hidden_layers", None):
        raise ConfigError(f"{name} is not a layered encoder (its config has no num_hidden_layers)")
    return source, config


def remote_code_refused(name: str) -> ConfigError:
    return ConfigError(
        f"{name} needs trust_remote_code, which this tool never enables; choose a model built into transformers"
    )


def is_mnli_classifier(config: PretrainedConfig) -> bool:
    """True when the model already classifies entailment/neutral/contradiction in GLUE order.

    The same three labels in another order are an error: silently using them would give a ~33% model.
    """
    names = [str(config.id2label[i]).lower() for i in range(len(config.id2label))]
    if names == list(LABELS):
        return True
    if sorted(names) == sorted(LABELS):
        raise ConfigError(
            f"the teacher's labels are ordered {names}, but the data uses GLUE order {list(LABELS)}; "
            "re-save the teacher with GLUE-ordered id2label/label2id"
        )
    return False


def load_tokenizer(source: str):
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=False, token=download_token())
    except (OSError, ValueError) as err:
        raise hub_error(f"tokenizer of {source!r}", err) from None


def load_classifier(source: str, *, eight_bit: bool = False) -> nn.Module:
    """An MNLI sequence classifier from `source`, with a new head if it has none for the GLUE labels."""
    kwargs: dict = {
        "num_labels": len(LABELS),
        "id2label": dict(enumerate(LABELS)),
        "label2id": {name: i for i, name in enumerate(LABELS)},
        "ignore_mismatched_sizes": True,
        "trust_remote_code": False,
        "token": download_token(),
    }
    if eight_bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=HEAD_MODULES)
    try:
        return AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise remote_code_refused(source) from None
        raise ConfigError(f"cannot load {source} as a sequence classifier: {first_line(err)}") from None
    except OSError as err:
        raise hub_error(f"model {source!r}", err) from None
    except ImportError as err:
        raise ConfigError(f"8-bit loading is not available here: {err}") from None


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer layers, found by shape rather than by a BERT-only attribute path.

    It is the first ModuleList holding `num_hidden_layers` modules of one class: `bert.encoder.layer`,
    `roberta.encoder.layer`, `distilbert.transformer.layer`, `deberta.encoder.layer`, and so on.
    """
    depth = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth and len({type(m) for m in module}) == 1:
            return module
    raise ConfigError(f"cannot find the {depth} encoder layers of {type(model).__name__}")


def build_student(
    teacher: nn.Module, layers: list[int], *, random_init: bool = False, layer_source: nn.Module | None = None
) -> nn.Module:
    """A copy of the teacher keeping only `layers` (0-based), in that order; all other weights copied.

    With `random_init`, the kept layers are re-drawn the way the architecture initialises a new model
    (the control that copies no teacher layer); with `layer_source` (the pre-trained encoder), they are that
    model's layers. Embeddings, pooler and head stay the teacher's either way.
    """
    student = copy.deepcopy(teacher)
    kept = nn.ModuleList(copy.deepcopy(encoder_layers(layer_source or teacher)[i]) for i in layers)
    if random_init:
        for layer in kept:
            layer.apply(student._init_weights)
    _replace_module(student, encoder_layers(student), kept)
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):  # per-layer cache indices must follow the new numbering
                module.layer_idx = new_index
    student.config.num_hidden_layers = len(layers)
    return student


def _replace_module(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for module in root.modules():
        for name, child in module.named_children():
            if child is old:
                setattr(module, name, new)
                return
    raise ConfigError("cannot replace the encoder layers")


def copied_layers_match(student: nn.Module, teacher: nn.Module, layers: list[int]) -> bool:
    """Whether student layer j holds exactly teacher layer layers[j]'s weights, for every j."""
    student_layers, teacher_layers = encoder_layers(student), encoder_layers(teacher)
    if len(student_layers) != len(layers):
        return False
    for j, i in enumerate(layers):
        s_state, t_state = student_layers[j].state_dict(), teacher_layers[i].state_dict()
        if s_state.keys() != t_state.keys() or not all(torch.equal(s_state[k], t_state[k]) for k in s_state):
            return False
    return True


def freeze_word_embeddings(model: nn.Module) -> nn.Module:
    """Stop training the word-embedding matrix: about half of a small BERT's weights, of which a batch uses a few
    hundred rows, yet its dense gradient, clipping and AdamW update cost a full pass over it every step."""
    model.get_input_embeddings().weight.requires_grad_(False)
    return model


DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")


def set_dropout(model: nn.Module, probability: float) -> nn.Module:
    """Every dropout of the model, hidden and attention, to `probability` (recorded in its config too)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability
    for name in DROPOUT_FIELDS:
        if isinstance(getattr(model.config, name, None), float):
            setattr(model.config, name, probability)
    return model


def for_training(model: nn.Module, *, freeze_words: bool, dropout: float | None) -> nn.Module:
    """The model as a job trains it: word embeddings frozen or not, dropout as set (None: the model's own)."""
    if freeze_words:
        freeze_word_embeddings(model)
    return model if dropout is None else set_dropout(model, dropout)


@contextlib.contextmanager
def trained_with(model: nn.Module, *, freeze_words: bool, dropout: float | None) -> Iterator[nn.Module]:
    """The model with these training settings inside the block, and as it was after it: the teacher fine-tunes
    with them, but its saved config and the students copied from it keep its own dropout and trainable weights."""
    trainable = {p: p.requires_grad for p in model.parameters()}
    rates = {m: m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    config = {k: getattr(model.config, k) for k in DROPOUT_FIELDS if isinstance(getattr(model.config, k, None), float)}
    try:
        yield for_training(model, freeze_words=freeze_words, dropout=dropout)
    finally:
        for parameter, flag in trainable.items():
            parameter.requires_grad_(flag)
        for module, rate in rates.items():
            module.p = rate
        for key, value in config.items():
            setattr(model.config, key, value)


# Models whose sequence-classification head reads the first position of the last layer and nothing else
# (BERT's pooler, the RoBERTa and ELECTRA heads), with BERT's layer structure.
FIRST_TOKEN_HEADS = ("bert", "roberta", "xlm-roberta", "electra")


@contextlib.contextmanager
def cls_only_last_layer(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Inside the block, the model's last encoder layer computes the first ([CLS]) position only.

    The classifier reads that one position, so every other output of the last layer is discarded work: its
    queries, attention output and feed-forward for the rest of the sequence. Only the keys and values still need
    every position. Logits, losses and gradients are the full model's up to float rounding, and a 3-layer
    student does about a quarter less work (`python -m bench.speedups`). Models of other families, and decoders,
    run in full. The hidden states the block returns end with the last layer's first position only.
    """
    layer = _cls_only_layer(model) if enabled else None
    if layer is None:
        yield model
        return
    layer.forward = types.MethodType(_first_token_forward, layer)  # bound: a deep copy would bind to its copy
    try:
        yield model
    finally:
        del layer.forward


def _cls_only_layer(model: nn.Module) -> nn.Module | None:
    """The last encoder layer, when the model's head reads [CLS] only and the layer is built like BERT's."""
    config = model.config
    if config.model_type not in FIRST_TOKEN_HEADS or config.is_decoder or config.add_cross_attention:
        return None
    layer = encoder_layers(model)[-1]
    heads = getattr(getattr(layer, "attention", None), "self", None)
    return layer if all(hasattr(heads, name) for name in ("query", "key", "value", "scaling")) else None


def _first_token_forward(layer: nn.Module, hidden_states: torch.Tensor, attention_mask=None, *args, **kwargs):
    """A BERT layer's forward for the first position: its query against every position's key and value."""
    attention, heads = layer.attention, layer.attention.self
    rows, width, _ = hidden_states.shape
    first = hidden_states[:, :1]
    per_head = (-1, heads.attention_head_size)
    query = heads.query(first).view(rows, 1, *per_head).transpose(1, 2)
    key = heads.key(hidden_states).view(rows, width, *per_head).transpose(1, 2)
    value = heads.value(hidden_states).view(rows, width, *per_head).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4:  # (rows, 1, queries, keys): the first query's row
        attention_mask = attention_mask[:, :, :1]
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(heads.config._attn_implementation, eager_attention_forward)
    dropout = heads.dropout.p if heads.training else 0.0
    context, _ = attend(heads, query, key, value, attention_mask, dropout=dropout, scaling=heads.scaling)
    return layer.feed_forward_chunk(attention.output(context.reshape(rows, 1, -1), first))


def saved_architecture(folder: Path) -> str:
    """What a saved model's speed depends on, read from its safetensors headers without loading a weight: its
    weights' names, shapes and types. Models of one job all come from one teacher, so the same weights mean the
    same operations, whatever their values (students of one depth share one architecture)."""
    weights = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as saved:
            for key in saved.keys():  # noqa: SIM118 (safe_open is not a dict)
                part = saved.get_slice(key)
                weights[key] = (tuple(part.get_shape()), part.get_dtype())
    return repr(sorted(weights.items())) if weights else f"unread: {folder}"  # no safetensors: a group of its own


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
