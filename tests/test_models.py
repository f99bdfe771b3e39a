import json

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    MPNetConfig,
    RobertaConfig,
)

from distill.config import ConfigError
from distill.data import LABELS
from distill.errors import UserError
from distill.models import (
    build_student,
    copied_layers_match,
    encoder_layers,
    is_mnli_classifier,
    load_classifier,
    load_model_config,
)

TINY = {
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 120,
    "max_position_embeddings": 64,
    "num_labels": 3,
}
ARCHITECTURES = {
    "bert": lambda: BertConfig(num_hidden_layers=4, **TINY),
    "roberta": lambda: RobertaConfig(num_hidden_layers=4, **TINY),
    "electra": lambda: ElectraConfig(num_hidden_layers=4, embedding_size=32, **TINY),
    "deberta-v2": lambda: DebertaV2Config(num_hidden_layers=4, **TINY),
    "mpnet": lambda: MPNetConfig(num_hidden_layers=4, **TINY),
    "distilbert": lambda: DistilBertConfig(
        n_layers=4, dim=32, n_heads=2, hidden_dim=64, vocab_size=120, max_position_embeddings=64, num_labels=3
    ),
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_students_of_every_architecture_copy_the_chosen_layers_and_reload(arch, tmp_path):
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_config(ARCHITECTURES[arch]()).eval()
    student = build_student(teacher, [1, 3])
    assert len(encoder_layers(student)) == 2 and student.config.num_hidden_layers == 2
    assert copied_layers_match(student, teacher, [1, 3])
    assert not copied_layers_match(student, teacher, [0, 2])
    # everything outside the encoder layers is the teacher's
    t_state = teacher.state_dict()
    for key, value in student.state_dict().items():
        if key in t_state and ".layer." not in key:
            assert torch.equal(value, t_state[key]), key
    ids = torch.randint(5, 100, (2, 12))
    with torch.no_grad():
        before = student(input_ids=ids).logits
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 2
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, before, atol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "roberta", "deberta-v2"])
def test_random_control_redraws_the_encoder_layers_and_keeps_the_rest(arch):
    teacher = AutoModelForSequenceClassification.from_config(ARCHITECTURES[arch]()).eval()
    with torch.no_grad():  # make the teacher's weights unlike a fresh initialisation
        for p in teacher.parameters():
            p.add_(0.5)
    torch.manual_seed(1)
    first = build_student(teacher, [0, 1], random_init=True)
    torch.manual_seed(1)
    again = build_student(teacher, [0, 1], random_init=True)
    torch.manual_seed(2)
    other = build_student(teacher, [0, 1], random_init=True)
    assert not copied_layers_match(first, teacher, [0, 1])
    layer = {k: v for k, v in encoder_layers(first)[0].state_dict().items() if v.ndim == 2}
    assert all(abs(v.mean().item()) < 0.05 for v in layer.values())  # drawn around 0, not the teacher's +0.5
    same = zip(encoder_layers(first).state_dict().values(), encoder_layers(again).state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in same)  # one seed, one draw
    differ = zip(encoder_layers(first).state_dict().values(), encoder_layers(other).state_dict().values(), strict=True)
    assert any(not torch.equal(a, b) for a, b in differ)
    t_state = teacher.state_dict()
    for key, value in first.state_dict().items():
        if key in t_state and ".layer." not in key:
            assert torch.equal(value, t_state[key]), key


def test_student_with_kept_layers_in_order_computes_like_a_shortened_teacher():
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_config(ARCHITECTURES["bert"]()).eval()
    full = build_student(teacher, [0, 1, 2, 3])  # all four layers: must equal the teacher
    ids = torch.randint(5, 100, (2, 10))
    with torch.no_grad():
        assert torch.allclose(full(input_ids=ids).logits, teacher(input_ids=ids).logits, atol=1e-6)


def test_label_order(tiny_bert):
    _, config = load_model_config(str(tiny_bert))
    assert is_mnli_classifier(config)
    config.id2label = {0: "contradiction", 1: "neutral", 2: "entailment"}
    with pytest.raises(ConfigError, match="GLUE order"):
        is_mnli_classifier(config)
    config.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    assert not is_mnli_classifier(config)


def test_embedded_teacher_gets_an_mnli_head():
    source, config = load_model_config("embedded")
    assert config.num_hidden_layers == 6 and config.hidden_size == 384
    assert not is_mnli_classifier(config)
    model = load_classifier(source)
    assert [model.config.id2label[i] for i in range(3)] == list(LABELS)


def test_remote_code_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "my-custom-encoder",
                "auto_map": {"AutoConfig": "configuration_x.XConfig"},
                "num_hidden_layers": 2,
            }
        )
    )
    with pytest.raises(ConfigError, match="trust_remote_code"):
        load_model_config(str(tmp_path))


def test_hub_ids_while_offline_name_the_offline_default():
    with pytest.raises(UserError, match=r"offline.*--teacher embedded"):
        load_model_config("bert-base-uncased")
    with pytest.raises(ConfigError, match="neither a model folder nor a valid Hub"):
        load_model_config("../../etc/passwd")
