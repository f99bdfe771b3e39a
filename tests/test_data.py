import gzip
import json
import time
import tracemalloc

import numpy as np
import pytest

from distill.config import ConfigError, JobConfig
from distill.data import (
    LABELS,
    MAX_FILE_BYTES,
    SAMPLE_DIR,
    Batcher,
    LengthGroupedBatches,
    encode,
    load_job_data,
    read_capped,
    read_table,
)


def test_shipped_sample_is_real_mnli_in_glue_label_order():
    with gzip.open(SAMPLE_DIR / "validation_matched.jsonl.gz", "rt") as f:
        first = json.loads(f.readline())
    # The first validation_matched pair of GLUE MNLI, a well-known neutral example.
    assert first["premise"].startswith("The new rights are nice enough")
    assert LABELS[first["label"]] == "neutral"
    assert (SAMPLE_DIR / "README.md").read_text().count("License") >= 1


def test_default_job_data_sizes_and_reproducible_subset():
    data = load_job_data(JobConfig())
    assert len(data["train"]) == 5000
    assert len(data["validation_matched"]) == len(data["validation_mismatched"]) == 1000
    again = load_job_data(JobConfig())
    assert again["train"].premises == data["train"].premises
    other = load_job_data(JobConfig(data_seed=1))
    assert other["train"].premises != data["train"].premises
    assert set(np.unique(data["train"].labels)) == {0, 1, 2}


def test_whole_sample_sizes():
    data = load_job_data(JobConfig(train_size=0, eval_size=0))
    assert (len(data["train"]), len(data["validation_matched"]), len(data["validation_mismatched"])) == (
        10772,
        9815,
        7832,
    )


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl"])
def test_user_files_with_label_names_or_ids(tmp_path, suffix):
    rows = [
        ("A man sleeps.", "A person rests.", "entailment"),
        ("A dog runs.", "A cat sits.", "2"),
        ("It rains.", "It is wet.", "Neutral"),
        ("x", "y", 0),
    ]
    path = tmp_path / f"mine.{suffix}"
    if suffix == "jsonl":
        path.write_text("\n".join(json.dumps({"premise": p, "hypothesis": h, "label": lab}) for p, h, lab in rows))
    else:
        sep = "\t" if suffix == "tsv" else ","
        path.write_text(
            f"premise{sep}hypothesis{sep}label\n" + "\n".join(sep.join([p, h, str(lab)]) for p, h, lab in rows)
        )
    examples = read_table(path)
    assert examples.labels.tolist() == [0, 2, 1, 0]
    assert examples.premises[0] == "A man sleeps."


def test_user_file_is_split_into_train_and_validation(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "\n".join(json.dumps({"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3}) for i in range(50))
    )
    data = load_job_data(JobConfig(data=str(path), eval_size=10, train_size=0))
    assert len(data["validation"]) == 10 and len(data["train"]) == 40
    assert not set(data["train"].premises) & set(data["validation"].premises)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"premise,hypothesis\na,b\n", "x.csv", "lacks column"),
        (b"premise,hypothesis,label\na,b,maybe\n", "x.csv", "unknown label"),
        (b"\xff\xfe\x00bad", "x.csv", "not valid UTF-8"),
        (b"premise,hypothesis,label\n", "x.csv", "no rows"),
        (b"{not json}\n", "x.jsonl", "not valid JSON"),
        (b"hello", "x.pdf", "use a .csv"),
    ],
)
def test_bad_files(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_table(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found") as err:
        read_table(__import__("pathlib").Path("/nonexistent/data.csv"))
    assert "data.csv" in str(err.value) and "/nonexistent" not in str(err.value)


LONG = "A long premise that goes on and on. " * 240  # about 10 KB, no separators
QUOTED = f"{LONG}, with commas,\nand a second line"


@pytest.mark.parametrize(
    ("text", "premise"),
    [
        (f"premise,hypothesis,label\n{LONG},short,neutral\nb,c,0\n", LONG),
        (f'premise,hypothesis,label\n"{QUOTED}",short,neutral\nb,c,0\n', QUOTED),
        (f"premise;hypothesis;label\n{LONG};short;neutral\nb;c;0\n", LONG),
        (f"premise\thypothesis\tlabel\n{LONG}\tshort\tneutral\nb\tc\t0\n", LONG),
        (f" Premise ,HYPOTHESIS,Label\n{LONG},short,neutral\nb,c,0\n", LONG),
    ],
    ids=["comma", "quoted-comma-newline", "semicolon", "tsv-named-csv", "header-case"],
)
def test_delimiter_is_read_from_the_header_even_after_a_long_first_field(tmp_path, text, premise):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    examples = read_table(path)
    assert examples.premises == [premise, "b"]
    assert examples.hypotheses == ["short", "c"]
    assert examples.labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    "content",
    ["words without separators " * 500, "just some words\nnot a table at all", ""],
    ids=["long", "short", "empty"],
)
def test_text_that_is_not_a_table(tmp_path, content):
    path = tmp_path / "notes.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"^notes\.csv is not a comma- or tab-separated table$"):
        read_table(path)


def test_gzip_is_capped_by_its_expanded_size(tmp_path):
    path = tmp_path / "huge.csv.gz"
    chunk = b"a" * 100_000
    with gzip.GzipFile(path, "wb", compresslevel=1) as f:
        for _ in range(2000):  # 200 MB expanded, a few hundred KB stored
            f.write(chunk)
    assert path.stat().st_size < MAX_FILE_BYTES
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match=r"^data file huge\.csv\.gz expands to more than 50 MB$"):
            read_table(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_FILE_BYTES
    assert time.perf_counter() - start < 30


def test_damaged_gzip(tmp_path):
    whole = gzip.compress(b"premise,hypothesis,label\n" + b"a,b,0\n" * 10_000)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConfigError, match=r"^data file cut\.csv\.gz is not a complete gzip file") as err:
        read_table(path)
    assert str(tmp_path) not in str(err.value)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError, match=r"^data file cut\.csv\.gz is not a complete gzip file"):
        read_capped(path, 1000)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_small_gzipped_files_still_read(tmp_path, suffix):
    path = tmp_path / f"mine.{suffix}.gz"
    if suffix == "csv":
        body = "premise,hypothesis,label\n" + "A dog runs.,A cat sits.,contradiction\n" * 100
    else:
        body = (json.dumps({"premise": "A dog runs.", "hypothesis": "A cat sits.", "label": 2}) + "\n") * 100
    path.write_bytes(gzip.compress(body.encode()))
    assert path.stat().st_size < len(body) // 2
    examples = read_table(path)
    assert examples.premises == ["A dog runs."] * 100 and examples.labels.tolist() == [2] * 100
    assert read_capped(path, len(body)) == body.encode()
    with pytest.raises(ConfigError, match=rf"^data file mine\.{suffix}\.gz expands to more than"):
        read_capped(path, len(body) - 1)


def test_read_capped_refuses_a_plain_file_over_the_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 2000)
    assert read_capped(path, 2000) == b"x" * 2000
    with pytest.raises(ConfigError, match=r"^data file big\.csv is larger than") as err:
        read_capped(path, 1999)
    assert str(tmp_path) not in str(err.value)


def test_length_grouping_cuts_padding_and_keeps_every_row(embedded_tokenizer):
    data = load_job_data(JobConfig(train_size=640))
    enc = encode(data["train"], embedded_tokenizer, 128)
    grouped = list(LengthGroupedBatches(enc.lengths, 32, seed=0, group=True))
    plain = list(LengthGroupedBatches(enc.lengths, 32, seed=0, group=False))
    assert sorted(i for b in grouped for i in b) == list(range(640))

    def padded(batches):
        return sum(len(b) * max(enc.lengths[i] for i in b) for b in batches)

    assert padded(grouped) < 0.85 * padded(plain)


def test_batches_differ_per_epoch_but_repeat_per_seed():
    lengths = list(range(100))
    a, b = LengthGroupedBatches(lengths, 8, seed=3), LengthGroupedBatches(lengths, 8, seed=3)
    first, second = list(a), list(a)
    assert first != second
    assert list(b) == first


def test_batcher_pads_dynamically(embedded_tokenizer):
    data = load_job_data(JobConfig(train_size=8))
    enc = encode(data["train"], embedded_tokenizer, 128)
    batch = Batcher(enc, embedded_tokenizer.pad_token_id)([0, 1, 2])
    assert batch["input_ids"].shape[1] == max(enc.lengths[:3])
    assert batch["attention_mask"].sum().item() == sum(enc.lengths[:3])
    assert Batcher(enc, 0, pad_to=128)([0])["input_ids"].shape == (1, 128)
