"""A public Space must not leak the HF token, run remote code, or write outside its results folder."""

import pytest

from distill.config import ConfigError, JobConfig
from distill.errors import UserError, scrub
from distill.hub import hub_error, resolve_model
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
    with pytest.raises(UserError):
        resolve_model(name)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/tmp/x", "a\\b", ".hidden"])
def test_run_names_stay_inside_the_results_folder(name, results_dir):
    with pytest.raises(ConfigError):
        JobConfig(run_name=name)
    with pytest.raises(UserError):
        open_run(name + "-missing", results_dir)


def test_hub_upload_is_off_without_settings_and_never_shows_the_token(tmp_path, monkeypatch):
    from distill.space import upload_run

    monkeypatch.delenv("DISTILL_UPLOAD_REPO", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert upload_run(tmp_path) is None
    monkeypatch.setenv("DISTILL_UPLOAD_REPO", "someone/students")
    with pytest.raises(UserError, match="upload to someone/students failed") as failure:
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
        space.enforce_limits(JobConfig(search=True, strategies=["top_k"], seeds=[0, 1]))  # 9 settings x 2 seeds
    space.enforce_limits(JobConfig())
    assert space.job_time_limit() == space.settings()["public_limits"]["max_job_minutes"] * 60
    monkeypatch.delenv("SPACE_ID")
    assert space.job_time_limit() is None


@pytest.fixture
def fake_hub():
    """A stand-in for the Hugging Face Hub on a local port (the real one cannot be reached here): it answers
    every request 'not found' and records the Authorization header each one carried."""
    import http.server
    import threading

    seen: list[str | None] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def answer(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(b'{"error": "Repository not found"}')

        do_GET = do_HEAD = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("on_a_space", [True, False])
def test_downloads_for_visitors_never_carry_the_spaces_token(fake_hub, on_a_space):
    import os
    import subprocess
    import sys

    from distill import space

    endpoint, seen = fake_hub
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN}
    env.pop("SPACE_ID", None)
    if on_a_space:
        env["SPACE_ID"] = space.settings()["original_space"]
    code = "from distill.models import load_model_config\nload_model_config('someone/teacher')"
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "cannot load model 'someone/teacher'" in loaded.stderr and TOKEN not in loaded.stderr
    assert seen, "the download reached the (stand-in) Hub"
    if on_a_space:
        assert not any(seen), "no request carried a token"
    else:  # the user's own login is used off a Space: the same check sees a token when there is one
        assert f"Bearer {TOKEN}" in seen


def test_every_way_to_start_work_meets_the_same_public_limits(tmp_path, monkeypatch, tiny_bert):
    import gzip

    from distill import space

    bomb = tmp_path / "small.csv.gz"
    with gzip.open(bomb, "wt") as f:
        f.write("premise,hypothesis,label\n" + "a,b,0\n" * 3_000_000)  # 18 MB of text in about 50 KB
    assert bomb.stat().st_size < 200_000
    cases = [
        ({"teacher": str(tiny_bert)}, "the teacher is one of"),  # a server folder that exists...
        ({"teacher": "/no/such/folder"}, "the teacher is one of"),  # ...and one that does not: the same answer
        ({"teacher": "someone/private-model"}, "the teacher is one of"),
        ({"batch_size": 512}, "batch_size is limited to 64"),
        ({"max_length": 512}, "max_length is limited to 128"),
        ({"latency_examples": 1000}, "latency_examples is limited"),
        ({"students_at_once": 4}, "students_at_once is limited to 2"),
        ({"strategies": ["0,1", "0,2", "1,2", "0,3", "1,3", "2,3", "top_k"]}, "strategies is limited to 6"),
        (
            {"search": True, "strategies": ["top_k"], "search_learning_rates": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4]},
            "students is limited to 12",
        ),
        ({"data": str(bomb)}, "uploads are limited to 10 MB.*expands to more than"),
    ]
    for changes, message in cases:
        cfg = JobConfig.from_dict({**changes, "results_dir": str(tmp_path / "runs")})
        space.enforce_limits(cfg)  # a duplicate or a local run: none of this is limited
        with monkeypatch.context() as public:
            public.setenv("SPACE_ID", space.settings()["original_space"])
            with pytest.raises(ConfigError, match=message) as refused:
                space.check_job(cfg)
            assert str(tmp_path) not in str(refused.value) and "config.json" not in str(refused.value)
    assert not (tmp_path / "runs").exists(), "nothing was started"
