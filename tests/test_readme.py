"""The README is part of the product: its Space front matter is valid and its Python snippet runs."""

import re
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_space_front_matter():
    assert README.startswith("---\n")
    meta = yaml.safe_load(README.split("---\n")[1])
    requirements = (ROOT / "requirements.txt").read_text()
    pinned = re.search(r"^gradio\[mcp\]==(\S+)$", requirements, re.M).group(1)  # with the MCP server's extra
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == pinned and meta["app_file"] == "app.py"
    # ZeroGPU: Python 3.10 or 3.12, `spaces` provided by the platform (never pinned), storage is a bucket
    assert meta["python_version"] in ("3.10", "3.12")
    assert not re.search(r"^spaces\b", requirements, re.M)
    assert "suggested_storage" not in meta
    for key in ("title", "emoji", "python_version", "suggested_hardware", "models", "datasets", "license", "tags"):
        assert meta.get(key), key
    assert len(meta["short_description"]) <= 60
    assert (ROOT / meta["app_file"]).is_file()


def test_readme_commands_match_ci():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = blocks[1].strip().split("&&")[-1].strip()
    assert test_command == "python -m pytest -q"
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_use_from_python_snippet_runs_against_the_app(app_server):
    section = README.split("### Use from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("http://127.0.0.1:7860/", app_server[0])
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["job"].outputs()[-1]["state"] == "completed"
    assert [r["strategy"] for r in namespace["table"]] == ["teacher", "top_k", "even", "ensemble(top_k+even)"]
    assert namespace["reply"]["label"] in {"entailment", "neutral", "contradiction"}

    # The same snippet with a refused setting ends at once with the refusal's message (gradio_client's own
    # `for state in job` would wait forever on it: docs/api.md), in a thread so that a hang fails the test.
    refused = code.replace("epochs=1,", "epochs=-1,", 1).split("\nruns = ")[0]
    assert refused != code.split("\nruns = ")[0]
    raised: list[Exception] = []

    def run_refused() -> None:
        try:
            exec(compile(refused, "README.md", "exec"), {})
        except Exception as err:  # gradio_client's ValidationError, checked below
            raised.append(err)

    snippet = threading.Thread(target=run_refused, daemon=True)
    snippet.start()
    snippet.join(timeout=60)
    assert not snippet.is_alive(), "the README's snippet hung on a refused job"
    assert raised and "Student epochs must be a positive number, not -1" in str(raised[0])


def test_every_bench_command_in_the_docs_is_a_module_here():
    """The README links to docs/performance.md, where the figures and the benches behind them now are."""
    pages = README + "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
    names = set(re.findall(r"python -m bench\.(\w+)", pages))
    assert names >= {"roofline", "speedups", "peer", "memory", "gpu_estimate", "chat_p50", "reference_check"}
    assert all((ROOT / "bench" / f"{name}.py").is_file() for name in names), names
    assert "python bench/" not in pages  # benches run as modules, from the repository root
    assert (ROOT / "bench" / "gpu_check.sh").is_file() and "bash bench/gpu_check.sh" in pages
    assert "docs/performance.md" in README
