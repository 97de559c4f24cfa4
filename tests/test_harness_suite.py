"""Workload suites: the shipped ones match the issue; a bad file fails with one line naming file and field."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

from opbench.errors import SuiteError  # noqa: E402
from opbench.suite import SUITES_DIR, load_suite  # noqa: E402

LS = (128, 256, 320, 384, 448, 512)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


GOOD = """
[defaults]
batch = 1
heads = 8
head_dim = 64
dtype = "float32"

[[workload]]
name = "a"
seq_len = 16
"""


def test_seed_suite_is_the_flux_shapes():
    suite = load_suite("seed")
    assert [w.name for w in suite.workloads] == [f"flux_L{L}" for L in LS]
    for wl, L in zip(suite.workloads, LS):
        assert (wl.batch, wl.seq_len, wl.heads, wl.kv_heads, wl.head_dim, wl.dtype, wl.causal) == (
            1, 1024 + L, 24, 24, 128, "bfloat16", False)


def test_long_suite_extends_the_seed_without_name_collisions():
    long = load_suite("long")
    lens = [w.seq_len for w in long.workloads]
    assert lens == [4096 + L for L in LS] + [8192, 16384]
    assert not {w.name for w in long.workloads} & {w.name for w in load_suite("seed").workloads}


def test_full_suite_covers_head_dims_causal_gqa_and_batches():
    wls = load_suite("full").workloads
    assert 20 <= len(wls) <= 48
    assert {w.head_dim for w in wls} == {64, 128, 256}
    assert {w.causal for w in wls} == {True, False}
    assert any(w.kv_heads < w.heads for w in wls)
    assert min(w.batch for w in wls) == 1 and max(w.batch for w in wls) == 16


def test_smoke_suite_is_cpu_sized():
    wls = load_suite("smoke").workloads
    assert all(w.batch == 1 and w.heads == 8 and w.head_dim == 64 and 128 <= w.seq_len <= 256 for w in wls)
    assert {"float32", "bfloat16"} <= {w.dtype for w in wls}


def test_suite_names_and_paths_resolve_to_the_same_file():
    assert load_suite("smoke").workloads == load_suite(str(SUITES_DIR / "attention" / "smoke.toml")).workloads


def test_flops_are_4bhs2d_halved_when_causal(tmp_path):
    wl = load_suite(str(write(tmp_path, GOOD + "causal = true\n"))).workloads[0]
    assert wl.flops == 4 * 1 * 8 * 16 * 16 * 64 / 2
    assert wl.kv_heads == 8 == wl.heads


@pytest.mark.parametrize(
    "extra, field",
    [
        ('\n[[workload]]\nname = "b"\nseq_len = -4\n', "workload[1] (b).seq_len"),
        ('\n[[workload]]\nname = "b"\nseq_len = 8\ndtype = "fp8"\n', "workload[1] (b).dtype"),
        ('\n[[workload]]\nname = "a"\nseq_len = 8\n', "workload[1].name: duplicate"),
        ('\n[[workload]]\nname = "b"\nseq_len = 8\nkv_heads = 3\n', "workload[1] (b).kv_heads"),
        ('\n[[workload]]\nname = "b"\nseq_len = 8\nheadim = 4\n', "unknown field 'headim'"),
        ('\n[[workload]]\nname = "b c"\nseq_len = 8\n', "workload[1].name"),
        ('\n[[workload]]\nname = "b"\nseq_len = 8\ncausal = "yes"\n', "workload[1] (b).causal"),
        ('\n[[workload]]\nname = "b"\n', "workload[1] (b).seq_len: missing"),
    ],
)
def test_bad_suite_gives_one_line_error_naming_file_and_field(tmp_path, extra, field):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(SuiteError) as err:
        load_suite(str(path))
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and field in message


def test_invalid_toml_and_missing_suite_are_one_line_errors(tmp_path):
    with pytest.raises(SuiteError, match="invalid TOML"):
        load_suite(str(write(tmp_path, "[[workload]\nname=")))
    with pytest.raises(SuiteError, match="known attention suites: .*seed"):
        load_suite("no_such_suite")
    with pytest.raises(SuiteError, match="expected one or more"):
        load_suite(str(write(tmp_path, "[defaults]\nbatch = 1\n")))
