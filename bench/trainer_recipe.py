"""The peer: the same comparison as a user would write it with the Hugging Face `Trainer`.

The teacher is fine-tuned with a plain `Trainer`; each student is a `Trainer` whose `compute_loss` runs the
teacher on every batch and returns (CE + KL on softened logits x T^2 + cosine on logits) / 3; `bf16=True` where
the job trains in bf16 (not on a CPU without avx512_bf16), `train_sampling_strategy="group_by_length"`, the
Trainer's default fused AdamW, evaluation only at the end. The data rows, layer choices and hyperparameters
are the job's, read from the same JobConfig as the pipeline.

    python -m bench.trainer_recipe --out result.json [job settings as JSON]

`python -m bench.peer` runs it side by side with `python -m distill run`; run alone it prints its rows.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from distill.config import JobConfig
from distill.data import encode, load_job_data
from distill.models import build_student, load_classifier, load_tokenizer
from distill.plan import check_teacher_and_layers
from distill.shared import student_rows
from distill.strategies import StrategyContext, resolve_layers
from distill.training import resolve_precision


class DistillationTrainer(Trainer):
    """A student Trainer: the teacher's forward pass on every batch, and the three-part loss of the experiment this
    project grew from."""

    def __init__(self, *args, teacher, temperature: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher, self.temperature = teacher.eval(), temperature

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        with torch.no_grad():
            teacher_logits = self.teacher(**inputs).logits.float()
        logits, t = outputs.logits.float(), self.temperature
        ce = F.cross_entropy(logits, inputs["labels"])
        kl = F.kl_div(
            F.log_softmax(logits / t, -1), F.log_softmax(teacher_logits / t, -1), reduction="batchmean", log_target=True
        )
        cos = (1 - F.cosine_similarity(logits, teacher_logits, dim=-1)).mean()
        loss = (ce + kl * t * t + cos) / 3
        return (loss, outputs) if return_outputs else loss


def to_dataset(encoded) -> Dataset:
    columns = {"input_ids": encoded.input_ids, "labels": encoded.labels.tolist()}
    if encoded.token_type_ids is not None:
        columns["token_type_ids"] = encoded.token_type_ids
    return Dataset.from_dict(columns)


def arguments(folder: str, cfg: JobConfig, *, epochs: int, learning_rate: float, seed: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=folder,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        bf16=resolve_precision("auto", torch.device("cuda" if torch.cuda.is_available() else "cpu")) == "bf16",
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length",
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
    )


def accuracy(trainer: Trainer, dataset: Dataset) -> float:
    predictions = trainer.predict(dataset)
    return float((np.argmax(predictions.predictions, axis=1) == predictions.label_ids).mean())


def run(cfg: JobConfig) -> dict:
    """Fine-tune the teacher, then distil every strategy and seed; per-model accuracy and training seconds."""
    plan = check_teacher_and_layers(cfg)
    source, config, n_student = plan.source, plan.teacher_config, plan.n_student
    tokenizer = load_tokenizer(source)
    examples = load_job_data(cfg)
    data = {name: encode(ex, tokenizer, cfg.max_length) for name, ex in examples.items()}
    students = to_dataset(data["train"].subset(student_rows(len(data["train"]), cfg)))
    evaluation = {split: to_dataset(enc) for split, enc in data.items() if split != "train"}
    collator = DataCollatorWithPadding(tokenizer)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        teacher = load_classifier(source)
        trainer = Trainer(
            model=teacher,
            args=arguments(
                folder, cfg, epochs=cfg.teacher_epochs, learning_rate=cfg.teacher_learning_rate, seed=cfg.seeds[0]
            ),
            train_dataset=to_dataset(data["train"]),
            data_collator=collator,
        )
        trainer.train()
        rows.append(
            {
                "model": "teacher",
                "seconds": time.perf_counter() - started,
                **{s: accuracy(trainer, d) for s, d in evaluation.items()},
            }
        )
        teacher = trainer.model.eval()
        for strategy in cfg.strategies:
            layers = resolve_layers(strategy, StrategyContext(config.num_hidden_layers, n_student, None))
            for seed in cfg.seeds:
                started = time.perf_counter()
                torch.manual_seed(seed)
                trainer = DistillationTrainer(
                    model=build_student(teacher, layers),
                    args=arguments(folder, cfg, epochs=cfg.epochs, learning_rate=cfg.learning_rate, seed=seed),
                    train_dataset=students,
                    data_collator=collator,
                    teacher=teacher,
                    temperature=cfg.temperature,
                )
                trainer.train()
                scores = {s: accuracy(trainer, d) for s, d in evaluation.items()}
                rows.append({"model": f"{strategy}-seed{seed}", "seconds": time.perf_counter() - started, **scores})
                print(json.dumps(rows[-1]), flush=True)
    return {"models": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("settings", help="job settings as a JSON object (JobConfig fields)")
    args = parser.parse_args()
    result = run(JobConfig.from_dict(json.loads(args.settings)))
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
