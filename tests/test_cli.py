"""The command line: bad input gets one clear line and a non-zero exit, and nothing is written."""

import json
import subprocess
import sys

import pytest

from distill.cli import main


@pytest.fixture
def remote_code_model(tmp_path):
    folder = tmp_path / "needs-remote-code"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "custom-x", "auto_map": {"AutoConfig": "a.B"}}))
    return folder


@pytest.fixture
def table_files(tmp_path):
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("premise,hypothesis\na,b\n")
    bad_label = tmp_path / "bad_label.csv"
    bad_label.write_text("premise,hypothesis,label\na,b,perhaps\n")
    return {"no_label": no_label, "bad_label": bad_label}


BAD_RUNS = [
    (["--strategies", "best_guess"], "unknown strategy"),
    (["--strategies", "0,9"], "out of range"),
    (["--strategies", "1,1,2"], "repeats"),
    (["--student-layers", "6"], "fewer layers"),
    (["--epochs", "0"], "epochs must be a positive"),
    (["--learning-rate", "-0.1"], "learning_rate must be a positive"),
    (["--batch-size", "0"], "batch_size must be a positive"),
    (["--temperature", "0"], "temperature must be a positive"),
    (["--data", "/no/such/file.csv"], "--data '/no/such/file.csv': file not found"),
    (["--teacher", "bert-base-uncased"], "offline"),
    (["--data", "glue"], "offline"),
    (["--run-name", "../outside"], "run_name"),
    (["--epochs", "many"], "epochs must be a whole number, not 'many'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_RUNS)
def test_bad_run_settings(args, message, capsys, results_dir):
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not results_dir.exists() or not any(results_dir.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--seeds"], "error: argument --seeds: expected at least one argument (see python -m distill run"),
        (["run", "--bogus-flag"], "error: unrecognized arguments: --bogus-flag (see python -m distill --help)"),
        (["bogus"], "error: argument command: invalid choice: 'bogus'"),
        ([], "error: the following arguments are required: command"),
    ],
)
def test_a_command_line_argparse_refuses_is_one_line(args, message, capsys, results_dir):
    """Not argparse's usage block (45 lines for `run`): the error and where to look, exit 2."""
    with pytest.raises(SystemExit) as exited:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and err.startswith(message) and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"epochs: [1\n", "is not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
        (b"epochs: 1\n  x: : y\n", "is not valid YAML at line 2, column 4: mapping values are not allowed here"),
        (b"\xff\xfeepochs: 1\n", "is not UTF-8 text"),
        (b"- 1\n- 2\n", "must be a mapping of settings"),
        (b"seeds: true\n", "seeds must be whole numbers separated by spaces, not 'True'"),
    ],
)
def test_a_bad_job_file_is_one_line(content, message, tmp_path, capsys, results_dir):
    job = tmp_path / "job.yaml"
    job.write_bytes(content)
    assert main(["run", "--config", str(job)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


def test_a_single_seed_in_a_job_file_is_a_list_of_one(tmp_path):
    from distill.config import JobConfig

    job = tmp_path / "job.yaml"
    job.write_text("seeds: 3\nstrategies: odd\nsearch_learning_rates: 1e-4\n")
    cfg = JobConfig.from_yaml(job)
    assert (cfg.seeds, cfg.strategies, cfg.search_learning_rates) == ([3], ["odd"], [1e-4])


def test_a_local_dry_run_is_refused_not_run(capsys, results_dir):
    assert main(["launch", "--backend", "local", "--dry-run", "--epochs", "1"]) == 2
    assert "--dry-run is for --backend hf-jobs" in capsys.readouterr().err
    assert not results_dir.exists() or not any(results_dir.iterdir())


def test_a_lease_names_the_program_as_typed(monkeypatch):
    from distill.lease import program_name

    monkeypatch.setattr(sys, "argv", ["/somewhere/distill/__main__.py", "run"])
    assert program_name() == "python -m distill"
    monkeypatch.setattr(sys, "argv", ["app.py"])
    assert program_name() == "app.py"


def test_bad_data_files(table_files, capsys, results_dir):
    assert main(["run", "--data", str(table_files["no_label"])]) == 2
    assert "lacks column(s) label" in capsys.readouterr().err
    assert main(["run", "--data", str(table_files["bad_label"])]) == 2
    assert "unknown label(s) perhaps" in capsys.readouterr().err


def test_remote_code_refused(remote_code_model, capsys, results_dir):
    assert main(["run", "--teacher", str(remote_code_model)]) == 2
    assert "trust_remote_code" in capsys.readouterr().err


def test_report_of_missing_run(capsys, results_dir):
    assert main(["report", "nope"]) == 2
    assert "no run named" in capsys.readouterr().err
    assert main(["report", "../../etc"]) == 2


def test_strategies_and_list(capsys, results_dir):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "top_k" in out and "0-based" in out
    assert main(["list"]) == 0
    assert "no runs yet" in capsys.readouterr().out


@pytest.mark.slow
def test_exit_code_in_a_real_process(results_dir):
    done = subprocess.run([sys.executable, "-m", "distill", "run", "--epochs", "-1"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: epochs must be a positive number, not -1"


def test_an_unforeseen_error_is_one_line_without_python_text(capsys, results_dir, monkeypatch):
    from distill import cli

    def broken(_):
        raise TypeError("expected str, bytes or os.PathLike object, not NoneType")

    monkeypatch.setattr(cli, "cmd_list", broken)
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert err == "error: unexpected error; run again with DISTILL_DEBUG=1 for the traceback\n"
    monkeypatch.setenv("DISTILL_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["list"])


@pytest.mark.slow
def test_help_and_config_checks_load_no_training_stack():
    """`python -m distill --help` answers without importing torch, transformers or accelerate (seconds to load on
    2 cores); `distill.run_job` still loads them on first use."""
    probe = (
        "import sys, distill.cli, distill.config; heavy = [m for m in ('torch', 'transformers', 'accelerate') "
        "if m in sys.modules]; import distill; distill.run_job; print(heavy, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True"
    shown = subprocess.run([sys.executable, "-m", "distill", "--help"], capture_output=True, text=True, check=True)
    assert "run a distillation job" in shown.stdout
