"""`torch_compile`: the job's training steps through torch.compile train the same models as eager ones, save
them as plain models, and the setting is refused on ZeroGPU, which does not support it."""

import pytest
import torch
from safetensors.torch import load_file

from distill import space
from distill.config import ConfigError, JobConfig
from distill.job import run_job
from distill.models import load_classifier


def student_weights(run) -> dict[str, dict[str, torch.Tensor]]:
    students = [r["model"] for r in run.summary() if r["role"] == "student"]
    return {name: load_file(run.model_dir(name) / "model.safetensors") for name in students}


@pytest.mark.slow  # compiling takes a few seconds even for a tiny model
def test_a_compiled_job_trains_the_models_an_eager_one_trains(tiny_cfg, tmp_path):
    eager = run_job(tiny_cfg.replace(run_name="eager"))
    compiled = run_job(tiny_cfg.replace(run_name="compiled", torch_compile=True))
    assert compiled.status()["state"] == "completed"
    eager_weights, compiled_weights = student_weights(eager), student_weights(compiled)
    assert eager_weights.keys() == compiled_weights.keys() and len(eager_weights) == 2
    for name, weights in compiled_weights.items():
        assert weights.keys() == eager_weights[name].keys()  # saved as the plain model: no `_orig_mod.` prefix
        changed = 0
        for key, value in weights.items():
            start = eager_weights[name][key]
            # bf16 autocast rounds differently in fused kernels, so the same steps agree to rounding, not bit for bit
            assert torch.allclose(value, start, atol=2e-2, rtol=2e-2), (name, key)
            changed += not torch.equal(value, start)
        assert changed  # the compiled kernels did run: some weight rounds differently
    reloaded = load_classifier(str(compiled.model_dir(next(iter(compiled_weights)))))
    assert not isinstance(reloaded, torch._dynamo.eval_frame.OptimizedModule)


def test_torch_compile_is_refused_on_zerogpu_and_allowed_elsewhere(monkeypatch):
    cfg = JobConfig(torch_compile=True)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    space.enforce_limits(cfg)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    with pytest.raises(ConfigError, match="torch_compile does not work on ZeroGPU") as refused:
        space.enforce_limits(cfg)
    assert refused.value.setting == "torch_compile"
    space.enforce_limits(JobConfig())  # the default is off, so a ZeroGPU job passes
