"""Which int8 kernels a runtime uses: the CPU's own where they are exact (an int8 dot product
with 32-bit sums: VNNI, AVX-VNNI, AMX), else the model's exact arithmetic emulated in fp32. The
CPU's flags are read from the machine, or from $VITDEPLOY_CPU_FLAGS to run as another would."""

from __future__ import annotations

import pytest

from vitdeploy.resources import cpu_flags, exact_int8_kernels, int8_mode, int8_note


@pytest.mark.parametrize("flags,mode", [("sse4_2 avx avx2 fma", "emulated"),
                                        ("avx2 avx512f avx512_vnni", "native"),
                                        ("avx2,avx_vnni", "native"), ("amx_tile amx_int8", "native"),
                                        ("", "emulated")])
def test_auto_follows_the_cpu_flags(monkeypatch, flags, mode):
    monkeypatch.setenv("VITDEPLOY_CPU_FLAGS", flags)
    assert int8_mode("auto") == mode and exact_int8_kernels() == (mode == "native")
    assert int8_mode("native") == "native" and int8_mode("emulated") == "emulated"


def test_real_flags_are_read_when_not_pretended(monkeypatch):
    monkeypatch.delenv("VITDEPLOY_CPU_FLAGS", raising=False)
    flags = cpu_flags()
    assert flags  # /proc/cpuinfo on Linux
    assert exact_int8_kernels() == bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def test_notes_say_what_was_chosen_and_how_to_change_it():
    assert "emulated" in int8_note("emulated") and "int8=native" in int8_note("emulated")
    assert "saturate" in int8_note("native")
