"""MNLI examples from the shipped sample, the Hub, or a user's file; tokenised once, batched by length."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import HUB_DATA, SAMPLE_DATA, ConfigError, JobConfig

LABELS = ("entailment", "neutral", "contradiction")  # GLUE / nyu-mll/glue order
LABEL_IDS = {name: i for i, name in enumerate(LABELS)}
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "mnli"
SAMPLE_SPLITS = ("train", "validation_matched", "validation_mismatched")
HUB_DATASET = f"dataset {HUB_DATA!r} (nyu-mll/glue mnli)"
MAX_FILE_BYTES = 50 * 1024 * 1024
_LABEL_ALIASES = {"contradictory": "contradiction", "neutrality": "neutral", "entails": "entailment"}
_COLUMNS = ("premise", "hypothesis", "label")
_CHUNK_BYTES = 1024 * 1024


@dataclass
class Examples:
    """Premise-hypothesis pairs with GLUE-order label ids."""

    premises: list[str]
    hypotheses: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, size: int | None, seed: int) -> Examples:
        """A reproducible random subset of `size` rows (all rows when size is None or too large)."""
        if size is None or size >= len(self):
            return self
        rows = np.random.default_rng(seed).permutation(len(self))[:size]
        rows.sort()  # file order; a larger size with the same seed still contains every smaller subset
        return Examples([self.premises[i] for i in rows], [self.hypotheses[i] for i in rows], self.labels[rows])


def load_job_data(cfg: JobConfig) -> dict[str, Examples]:
    """The training split and every validation split of a job, already subset."""
    if cfg.data == SAMPLE_DATA:
        splits = {name: read_table(SAMPLE_DIR / f"{name}.jsonl.gz") for name in SAMPLE_SPLITS}
    elif cfg.data == HUB_DATA:
        splits = load_hub_mnli()
    else:
        splits = {"train": read_table(Path(cfg.data))}
        if cfg.eval_data:
            for path in cfg.eval_data:
                splits[Path(path).name.split(".")[0]] = read_table(Path(path))
        else:  # hold out a part of the user's file for validation
            splits = _hold_out(splits["train"], cfg.eval_size, cfg.data_seed)
    out = {"train": splits.pop("train").subset(cfg.train_size, cfg.data_seed)}
    for name, examples in splits.items():
        out[name] = examples.subset(cfg.eval_size, cfg.data_seed)
    for name, examples in out.items():
        if len(examples) == 0:
            raise ConfigError(f"the {name} split has no examples")
    return out


def _hold_out(examples: Examples, eval_size: int | None, seed: int) -> dict[str, Examples]:
    n_eval = min(eval_size or max(1, len(examples) // 10), len(examples) // 2)
    if n_eval < 1:
        raise ConfigError("the data file needs at least 2 rows to hold out a validation split")
    order = np.random.default_rng(seed + 1).permutation(len(examples))

    def pick(rows: np.ndarray) -> Examples:
        rows = np.sort(rows)
        return Examples(
            [examples.premises[i] for i in rows], [examples.hypotheses[i] for i in rows], examples.labels[rows]
        )

    return {"train": pick(order[n_eval:]), "validation": pick(order[:n_eval])}


def load_hub_mnli() -> dict[str, Examples]:
    """GLUE MNLI from the Hub (nyu-mll/glue, config mnli); needs network access."""
    from .hub import download_token, hub_error, require_online

    require_online(HUB_DATASET)
    import datasets

    try:
        ds = datasets.load_dataset("nyu-mll/glue", "mnli", token=download_token())
    except Exception as err:  # the datasets library raises many unrelated types for network failures
        raise hub_error("dataset nyu-mll/glue mnli", err) from None
    names = ds["train"].features["label"].names
    if tuple(names) != LABELS:
        raise ConfigError(f"nyu-mll/glue mnli labels are {names}, expected {list(LABELS)}")
    return {
        split: Examples(list(ds[split]["premise"]), list(ds[split]["hypothesis"]), np.array(ds[split]["label"]))
        for split in SAMPLE_SPLITS
    }


def read_table(path: Path) -> Examples:
    """Read premise, hypothesis and label columns from a CSV, TSV or JSONL file (optionally gzipped)."""
    raw = read_capped(path, MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"data file {path.name} is not valid UTF-8 text") from None
    kind = path.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if kind in ("jsonl", "json"):
        rows = _json_rows(text, path.name)
    elif kind in ("csv", "tsv", "txt"):
        rows = _delimited_rows(text, ("\t", ",", ";") if kind == "tsv" else (",", "\t", ";"), path.name)
    else:
        raise ConfigError(f"data file {path.name}: use a .csv, .tsv or .jsonl file")
    return _to_examples(rows, path.name)


def read_capped(path: Path, limit: int) -> bytes:
    """The file's bytes, gunzipped when it ends in .gz; ConfigError when its stored or expanded size exceeds `limit`."""
    if not path.is_file():
        raise ConfigError(f"data file not found: {path.name}")
    if path.stat().st_size > limit:
        raise ConfigError(f"data file {path.name} is larger than {_size(limit)}")
    if path.suffix != ".gz":
        return path.read_bytes()
    parts, total = [], 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK_BYTES):  # each read inflates at most one chunk
                total += len(chunk)
                if total > limit:
                    raise ConfigError(f"data file {path.name} expands to more than {_size(limit)}")
                parts.append(chunk)
    except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"data file {path.name} is not a complete gzip file (damaged or cut short)") from None
    return b"".join(parts)


def _size(n: int) -> str:
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _json_rows(text: str, name: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{name} line {number} is not valid JSON") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{name} line {number} is not a JSON object")
        rows.append(row)
    return rows


def _delimited_rows(text: str, delimiters: tuple[str, ...], name: str) -> list[dict]:
    """Rows keyed by the header; its delimiter is the first that yields the needed columns, else the most columns."""
    buf = io.StringIO(text)
    headers = {}
    for delimiter in delimiters:
        buf.seek(0)
        headers[delimiter] = _header(buf, delimiter)
    found = [d for d, header in headers.items() if set(_COLUMNS) <= {c.strip().lower() for c in header}]
    delimiter = found[0] if found else max(headers, key=lambda d: len(headers[d]))
    if len(headers[delimiter]) < 2:
        raise ConfigError(f"{name} is not a comma- or tab-separated table")
    buf.seek(0)
    header = _header(buf, delimiter)
    try:
        return list(csv.DictReader(buf, fieldnames=header, delimiter=delimiter))
    except csv.Error as err:
        raise ConfigError(f"{name} is not a readable table: {err}") from None


def _header(buf: io.StringIO, delimiter: str) -> list[str]:
    """The first non-blank record of `buf`, which is left just after it; empty when none is readable."""
    try:
        return next((row for row in csv.reader(buf, delimiter=delimiter) if row), [])
    except csv.Error:
        return []


def _to_examples(rows: list[dict], name: str) -> Examples:
    if not rows:
        raise ConfigError(f"{name} has no rows")
    columns = {str(k).strip().lower(): k for k in rows[0] if k is not None}
    missing = [c for c in ("premise", "hypothesis", "label") if c not in columns]
    if missing:
        raise ConfigError(f"{name} lacks column(s) {', '.join(missing)} (it has: {', '.join(columns) or 'none'})")
    premises, hypotheses, labels, unknown = [], [], [], set()
    for row in rows:
        label = parse_label(row.get(columns["label"]))
        if label is None:
            unknown.add(str(row.get(columns["label"])))
            continue
        premises.append(str(row.get(columns["premise"]) or ""))
        hypotheses.append(str(row.get(columns["hypothesis"]) or ""))
        labels.append(label)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise ConfigError(f"{name} has unknown label(s) {shown}; use {', '.join(LABELS)} or 0, 1, 2")
    return Examples(premises, hypotheses, np.array(labels, dtype=np.int64))


def parse_label(value: object) -> int | None:
    """A label name (any case) or id in GLUE order; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value) if 0 <= value < len(LABELS) else None
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text) if int(text) < len(LABELS) else None
    return LABEL_IDS.get(_LABEL_ALIASES.get(text, text))


@dataclass
class Encoded:
    """Token ids of one split, tokenised once per job."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def subset(self, rows: list[int]) -> Encoded:
        return Encoded(
            [self.input_ids[i] for i in rows],
            [self.token_type_ids[i] for i in rows] if self.token_type_ids else None,
            self.labels[rows],
        )


def encode(examples: Examples, tokenizer, max_length: int) -> Encoded:
    enc = tokenizer(examples.premises, examples.hypotheses, truncation=True, max_length=max_length)
    return Encoded(enc["input_ids"], enc.get("token_type_ids"), examples.labels)


class Batcher:
    """Turns batches of row indices into padded tensors; pads to the batch's longest row unless told otherwise."""

    def __init__(self, data: Encoded, pad_id: int, pad_to: int | None = None):
        self.data, self.pad_id, self.pad_to = data, pad_id, pad_to

    def __call__(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        width = self.pad_to or max(len(self.data.input_ids[i]) for i in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for j, i in enumerate(rows):
            seq = self.data.input_ids[i]
            ids[j, : len(seq)] = torch.tensor(seq)
            mask[j, : len(seq)] = 1
            if self.data.token_type_ids is not None:
                types[j, : len(seq)] = torch.tensor(self.data.token_type_ids[i])
        batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.as_tensor(self.data.labels[list(rows)])}
        if self.data.token_type_ids is not None:
            batch["token_type_ids"] = types
        batch["rows"] = torch.as_tensor(list(rows), dtype=torch.long)
        return batch


class LengthGroupedBatches(torch.utils.data.Sampler[list[int]]):
    """Shuffled batches of row indices; with grouping on, rows of similar length share a batch.

    Each pass draws a new order from (seed, pass number), so epochs differ and reruns repeat.
    Grouping sorts within windows of 50 batches, then shuffles the batches, as the HF Trainer does.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: bool = True, shuffle: bool = True):
        self.lengths, self.batch_size, self.seed, self.group, self.shuffle = lengths, batch_size, seed, group, shuffle
        self.passes = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1000003 + self.passes)
        self.passes += 1
        rows = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(rows)
        if self.group:
            window = self.batch_size * 50
            rows = [
                i
                for start in range(0, len(rows), window)
                for i in sorted(rows[start : start + window], key=self.lengths.__getitem__, reverse=True)
            ]
        batches = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        if self.shuffle and self.group:
            rng.shuffle(batches)
        yield from batches


def make_loader(
    data: Encoded,
    pad_id: int,
    batch_size: int,
    seed: int = 0,
    *,
    train: bool,
    group: bool = True,
    pad_to: int | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader whose batches carry their row indices (for the teacher-output cache)."""
    sampler = LengthGroupedBatches(data.lengths, batch_size, seed, group=group, shuffle=train)
    # Its own generator: without one, every pass over a DataLoader draws a seed from the global generator, which
    # a student built beside it (`training.SEEDED`) is drawing its weights from.
    return torch.utils.data.DataLoader(
        range(len(data)),
        batch_sampler=sampler,
        collate_fn=Batcher(data, pad_id, pad_to),
        generator=torch.Generator().manual_seed(seed),
    )
