"""Precision on a CPU: `auto` trains in bf16 only where the CPU multiplies it natively (avx512_bf16), and an
explicit bf16 is refused before the queue on an x86 CPU without AVX-512, where PyTorch would emulate it 50 to 100
times slower than fp32 (`python -m bench.precision`). The CPU is stood in for by torch's own feature checks."""

import pytest
import torch
from gradio_client import Client
from test_form_walk import api_refusal

from distill import space
from distill.config import ConfigError, JobConfig
from distill.training import resolve_precision

CPU = torch.device("cpu")


@pytest.fixture
def cpu_with(monkeypatch):
    """Make this CPU look like one with the named features: 'avx512', 'avx512_bf16', on 'x86_64' or 'aarch64'."""

    def pretend(*features: str, machine: str = "x86_64") -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: "avx512" in features)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: "avx512_bf16" in features)
        monkeypatch.setattr("platform.machine", lambda: machine)
        monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    return pretend


@pytest.mark.parametrize(
    ("features", "machine", "auto", "bf16"),
    [
        (("avx512", "avx512_bf16"), "x86_64", "bf16", "bf16"),  # the development machine of docs/performance.md
        (("avx512",), "x86_64", "fp32", "bf16"),  # oneDNN converts bf16 with AVX-512: allowed when asked for
        ((), "x86_64", "fp32", None),  # AVX2 only: bf16 is emulated, refused
        ((), "AMD64", "fp32", None),  # the same CPU as Windows names it
        ((), "aarch64", "fp32", "bf16"),  # an ARM CPU's bf16 is not this check's to judge
    ],
)
def test_auto_takes_bf16_only_where_native_and_bf16_is_refused_where_emulated(cpu_with, features, machine, auto, bf16):
    cpu_with(*features, machine=machine)
    assert resolve_precision("auto", CPU) == auto
    assert resolve_precision("fp32", CPU) == "fp32"
    if bf16 is None:
        with pytest.raises(ConfigError, match="no AVX-512, so bf16 would run 50 to 100 times slower") as refused:
            resolve_precision("bf16", CPU)
        assert refused.value.setting == "precision"
    else:
        assert resolve_precision("bf16", CPU) == bf16
    with pytest.raises(ConfigError, match="fp16 needs a GPU") as refused:
        resolve_precision("fp16", CPU)
    assert refused.value.setting == "precision"
    assert ("bf16, fp32 or auto" in str(refused.value)) == (bf16 is not None)  # never suggests what it refuses
    mps = torch.device("mps")  # another accelerator: the CPU's flags do not decide its precision
    assert resolve_precision("auto", mps) == "fp32" and resolve_precision("bf16", mps) == "bf16"


def test_a_precision_this_cpu_cannot_run_is_refused_before_the_queue(cpu_with, monkeypatch):
    cpu_with()  # AVX2 only
    for precision in ("bf16", "fp16"):
        with pytest.raises(ConfigError) as refused:
            space.enforce_limits(JobConfig(precision=precision))
        assert refused.value.setting == "precision"
    space.enforce_limits(JobConfig(precision="fp32"))
    space.enforce_limits(JobConfig())  # auto: fp32 here
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # the GPU a ZeroGPU job runs on is not this CPU
    space.enforce_limits(JobConfig(precision="fp16"))
    cpu_with("avx512", "avx512_bf16")
    space.enforce_limits(JobConfig(precision="bf16"))


def test_the_app_refuses_emulated_bf16_at_the_field_and_starts_nothing(app_server, cpu_with):
    """The app runs in this process, so the stood-in CPU is the one its check sees; the refusal is Gradio's
    validation at the Precision field, before the queue, not a job that fails."""
    cpu_with()
    before = sorted(p.name for p in app_server[1].iterdir())
    client = Client(app_server[0], verbose=False)
    message = api_refusal(client, "precision", "bf16", {"run_name": "emulated-bf16"})
    assert (
        message
        == "Precision: this CPU has no AVX-512, so bf16 would run 50 to 100 times slower than fp32; use fp32 or auto"
    )
    assert api_refusal(client, "precision", "fp16", {}) == "Precision: fp16 needs a GPU; on this CPU use fp32 or auto"
    assert sorted(p.name for p in app_server[1].iterdir()) == before, "no run was started"
