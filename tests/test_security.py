"""A public Space must not leak the HF token, run remote code, or write outside its results folder."""

import pytest

from distill.config import ConfigError, JobConfig
from distill.hub import hub_error, resolve_model, scrub
from distill.results import open_run

TOKEN = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"


def test_token_is_scrubbed_from_error_messages(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    err = hub_error("model 'x/y'", OSError(f"401 Client Error for url with Authorization: Bearer {TOKEN}"))
    assert TOKEN not in str(err) and "***" in str(err)
    assert TOKEN not in scrub(f"token={TOKEN} other=hf_{'z' * 30}")
    assert "hf_zzz" not in scrub(f"other=hf_{'z' * 30}")


@pytest.mark.parametrize("name", ["../../etc", "a/b", "/abs/path", "x" * 200, "bad id!", "org/..", ".hidden/x"])
def test_model_ids_are_validated_before_any_download(name):
    with pytest.raises(ConfigError):
        resolve_model(name)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/tmp/x", "a\\b", ".hidden"])
def test_run_names_stay_inside_the_results_folder(name, results_dir):
    with pytest.raises(ConfigError):
        JobConfig(run_name=name)
    with pytest.raises(ConfigError):
        open_run(name + "-missing", results_dir)


def test_hub_upload_is_off_without_settings_and_never_shows_the_token(tmp_path, monkeypatch):
    from distill.space import upload_run

    monkeypatch.delenv("DISTILL_UPLOAD_REPO", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert upload_run(tmp_path) is None
    monkeypatch.setenv("DISTILL_UPLOAD_REPO", "someone/students")
    with pytest.raises(ConfigError, match="upload to someone/students failed") as failure:
        upload_run(tmp_path)  # the Hub cannot be reached here
    assert TOKEN not in str(failure.value)


def test_public_space_limits_job_and_upload_size(tmp_path, monkeypatch):
    from distill import space

    big = tmp_path / "big.csv"
    big.write_bytes(b"premise,hypothesis,label\n" + b"a,b,0\n" * 2_000_000)  # about 12 MB
    job = JobConfig(data=str(big), train_size=100)
    space.enforce_limits(job)  # a duplicate or a local run: no limits
    monkeypatch.setenv("SPACE_ID", space.settings()["original_space"])
    with pytest.raises(ConfigError, match="uploads are limited to 10 MB"):
        space.enforce_limits(job)
    with pytest.raises(ConfigError, match=r"epochs is limited.*duplicate the Space"):
        space.enforce_limits(JobConfig(epochs=50))
    with pytest.raises(ConfigError, match=r"students is limited to 12"):
        space.enforce_limits(JobConfig(search=True, seeds=[0, 1]))  # 9 settings x 2 seeds
    space.enforce_limits(JobConfig())
    assert space.job_time_limit() == space.settings()["public_limits"]["max_job_minutes"] * 60
    monkeypatch.delenv("SPACE_ID")
    assert space.job_time_limit() is None
