"""The command line's path arguments: a path that cannot work is refused before any work, in one line that names
it as given, never with a traceback."""

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from distill.cli import main

REPO = "someone/some-run"


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    """The command line in this process (a new one imports torch for seconds); the default results folder is
    a fresh one, so what a refused command wrote would show."""
    monkeypatch.setenv("DISTILL_RESULTS_DIR", str(tmp_path / "default-runs"))

    def run(*args: str) -> Done:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return run


def refused(done: Done, given: str, why: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and repr(given) in lines[0] and why in lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file.txt"
    path.write_text("not a folder")
    return path


@pytest.fixture
def read_only_folder(tmp_path_factory):
    """A folder nothing can be written in: chmod 0o555, or /sys where the tests run as root (root writes anyway)."""
    folder = tmp_path_factory.mktemp("read-only")
    folder.chmod(0o555)
    try:
        tempfile.mkdtemp(dir=folder)
    except OSError:
        yield str(folder)
    else:
        yield "/sys"
    finally:
        folder.chmod(0o755)


def test_publish_into_the_root_folder_names_it_in_a_real_process():
    done = subprocess.run(
        [sys.executable, "-m", "distill", "publish", "some-run", "--repo", REPO, "--dry-run", "/"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    refused(done, "/", "is not an empty folder")
    assert done.returncode == 2


@pytest.mark.parametrize("given", ["/proc/x", "/sys/x", "/proc/x/y"])
def test_folders_that_cannot_be_made(given, cli, tmp_path):
    refused(cli("publish", "some-run", "--repo", REPO, "--dry-run", given), given, "cannot be made")
    refused(cli("run", "--results-dir", given, "--quiet"), given, "cannot be made")
    assert not list(tmp_path.iterdir())


def test_a_folder_under_a_file(a_file, cli):
    given = str(a_file / "tree")
    refused(cli("publish", "some-run", "--repo", REPO, "--dry-run", given), given, "a part of it is a file")
    refused(cli("run", "--results-dir", given, "--quiet"), given, "a part of it is a file")


def test_a_file_where_a_folder_is_expected(a_file, cli):
    given = str(a_file)
    refused(cli("list", "--results-dir", given), given, "is a file, not a folder")
    refused(cli("report", "x", "--results-dir", given), given, "is a file, not a folder")
    refused(cli("publish", "x", "--repo", REPO, "--dry-run", given), given, "is a file, not a folder")


def test_a_read_only_folder(read_only_folder, cli, tmp_path):
    refused(cli("run", "--results-dir", read_only_folder, "--quiet"), read_only_folder, "cannot be written")
    assert not (tmp_path / "default-runs").exists()


def test_a_folder_that_must_be_empty_is_not(cli, tmp_path):
    folder = tmp_path / "used"
    folder.mkdir()
    (folder / "kept.txt").write_text("mine")
    refused(cli("publish", "some-run", "--repo", REPO, "--dry-run", str(folder)), str(folder), "not an empty folder")
    assert [p.name for p in folder.iterdir()] == ["kept.txt"]


@pytest.mark.parametrize("flag", ["--config", "--data", "--eval-data"])
def test_a_missing_input_file(flag, cli, tmp_path):
    given = str(tmp_path / "missing.csv")
    refused(cli("run", flag, given, "--results-dir", str(tmp_path / "runs")), given, "file not found")
    assert not (tmp_path / "runs").exists()


def test_a_folder_where_a_file_is_expected(cli, tmp_path):
    refused(cli("run", "--config", str(tmp_path)), str(tmp_path), "is a folder, not a file")


@pytest.mark.parametrize("command", [["list"], ["report", "x"], ["resume", "x"], ["jobs", "status", "x"]])
def test_a_missing_results_folder_to_read(command, cli):
    refused(cli(*command, "--results-dir", "/proc/x"), "/proc/x", "no such folder")


def test_dot_dot_through_a_missing_folder_means_the_folder_beside_it(cli, tmp_path):
    """ "missing/../used" is "used", as given: refused as not empty, naming the path as given, and the missing
    folder is not made (the kernel would refuse the path, and making folders first would make it)."""
    used = tmp_path / "used"
    used.mkdir()
    (used / "kept.txt").write_text("mine")
    given = str(tmp_path / "missing" / ".." / "used")
    refused(cli("publish", "some-run", "--repo", REPO, "--dry-run", given), given, "not an empty folder")
    refused(cli("run", "--config", str(tmp_path / "missing" / ".." / "used")), given, "is a folder, not a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]
    assert [p.name for p in used.iterdir()] == ["kept.txt"]


def test_checks_make_nothing_and_return_the_normalised_path(tmp_path):
    from distill import paths

    given = str(tmp_path / "missing" / ".." / "new")
    assert paths.output_folder(given, "--dry-run", empty=True) == str(tmp_path / "new")
    (tmp_path / "data.csv").write_text("text,label\n")
    assert paths.input_file(str(tmp_path / "gone" / ".." / "data.csv"), "--data") == str(tmp_path / "data.csv")
    assert paths.input_folder(str(tmp_path / "gone" / ".."), "--results-dir") == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_a_relative_path_stays_relative_and_normalised(tmp_path, monkeypatch):
    """A launched job resolves its relative results folder on the machine it runs on."""
    from distill import paths

    monkeypatch.chdir(tmp_path)
    assert paths.output_folder("missing/../out", "--results-dir") == "out"
    assert not list(tmp_path.iterdir())


def test_publish_dry_run_through_a_missing_folder_makes_only_the_folder_named(tmp_path):
    """The dry run writes into the normalised folder; the missing folder on the way is never made."""
    import argparse

    from distill import cli as cli_module

    given = str(tmp_path / "missing" / ".." / "new")
    args = argparse.Namespace(command="publish", config=None, results_dir=None, dry_run=given)
    cli_module.check_paths(args)
    assert args.dry_run == str(tmp_path / "new")
    assert not list(tmp_path.iterdir())
