"""Which machine a bench ran on: the CPU's model and matmul instruction sets, which set a bf16 matmul's speed
more than anything else (the same 2-core kind of machine has come with AVX2 only, AVX-512 bf16, or AMX)."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch

MATMUL_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_facts() -> dict:
    """What bounds a bf16 matmul on this machine: the CPU model, its matmul instruction sets, torch's threads."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return {
        "model": model,
        "matmul_flags": [flag for flag in MATMUL_FLAGS if flag in flags],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def describe(cpu: dict) -> str:
    """One line for the table's heading: 'AMD EPYC, avx512f avx512_bf16 avx512_vnni, no AMX, 2 threads, torch …'."""
    amx = "" if any(f.startswith("amx") for f in cpu["matmul_flags"]) else ", no AMX"
    flags = " ".join(cpu["matmul_flags"]) or "no AVX-512"
    return f"{cpu['model']}, {flags}{amx}, {cpu['threads']} threads, torch {cpu['torch']}"


def machine() -> str:
    """The `machine` field of every bench's file: 'x86_64, 2 cores, <describe(cpu_facts())>'."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {describe(cpu_facts())}"
