"""Hub-kernel impls load the revision their hub.toml pins; the pin is validated and recorded in the tags."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "shared"))

from opbench.errors import HarnessError  # noqa: E402
from opbench.hub import read_pin  # noqa: E402


@pytest.mark.parametrize("impl", ["hf_kernels_flash_attn", "hf_kernels_flash_attn3"])
def test_each_hub_impl_reads_its_pin_from_a_file_in_its_own_folder(impl):
    repo, which, text = read_pin(REPO / "impls" / impl / "hub.toml")
    assert repo.startswith("kernels-community/") and text.startswith(repo + "@")
    assert set(which) <= {"revision", "version"} and len(which) == 1
    assert "hub =" not in (REPO / "impls" / impl / "bench.py").read_text()  # one place for the pin


def test_a_commit_pin_is_exact_and_a_bad_one_is_a_one_line_error(tmp_path):
    pin = tmp_path / "hub.toml"
    pin.write_text('repo = "kernels-community/x"\nrevision = "' + "ab" * 20 + '"\n')
    assert read_pin(pin) == ("kernels-community/x", {"revision": "ab" * 20}, "kernels-community/x@" + "ab" * 20)
    pin.write_text('repo = "kernels-community/x"\nrevision = "main"\n')
    with pytest.raises(HarnessError, match=r"hub.toml: revision: expected a 40-hex commit"):
        read_pin(pin)
