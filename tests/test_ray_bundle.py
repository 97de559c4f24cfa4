"""What travels between driver and Ray workers: folders re-created exactly, safely, and checked (no Ray needed)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from orchestrator.errors import BuildError
from orchestrator.cache.hashing import sha256_tree
from orchestrator.cache.outputs import check_outputs
from orchestrator.executors.ray.bundle import Bundle


def test_folder_round_trips_with_nested_files_and_empty_dirs(tmp_path):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "top.bin").write_bytes(bytes(range(256)))
    (src / "a" / "b" / "deep.txt").write_text("deep")
    dest = tmp_path / "dest"
    Bundle.of(src).write_to(dest)
    assert (dest / "top.bin").read_bytes() == bytes(range(256))
    assert (dest / "a" / "b" / "deep.txt").read_text() == "deep"
    assert (dest / "empty").is_dir()


def test_source_tree_sends_what_the_key_hashes(tmp_path):
    src = tmp_path / "shared"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("X = 1\n")
    (src / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (src / "pkg" / "stale.pyc").write_bytes(b"junk")
    (src / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    bundle = Bundle.of(src, source_tree=True)
    assert sorted(rel for rel, _, _ in bundle.files) == ["pkg/__init__.py", "pyproject.toml"]
    Bundle.of(src, source_tree=True).write_to(tmp_path / "copy")
    assert sha256_tree(tmp_path / "copy") == sha256_tree(src)


def test_symlink_and_fifo_outputs_are_rejected_as_for_a_local_job(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink("/etc/passwd", out / "leak.txt")
    remote = tmp_path / "remote"
    Bundle.of(out).write_to(remote)
    assert os.readlink(remote / "leak.txt") == "/etc/passwd"
    assert check_outputs(remote, keep=set()) == check_outputs(out, keep=set()) == \
        "output leak.txt is a symbolic link; outputs must be plain files"
    fifo_out = tmp_path / "fifo_out"
    fifo_out.mkdir()
    os.mkfifo(fifo_out / "pipe")
    Bundle.of(fifo_out).write_to(tmp_path / "fifo_remote")
    assert check_outputs(tmp_path / "fifo_remote", keep=set()) == "output pipe is not a regular file"


@pytest.mark.parametrize("rel", ["../escape.txt", "/etc/evil", "a/../../b", "", "a\0b"])
def test_unsafe_paths_are_refused_and_nothing_lands_outside(tmp_path, rel):
    bad = Bundle(files=((rel, b"x", "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"),))
    with pytest.raises(BuildError, match="unsafe path"):
        bad.write_to(tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) in (["dest"], [])
    assert not (tmp_path / "escape.txt").exists()


def test_link_is_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    bundle = Bundle(links=(("d", str(outside)),),
                    files=(("d/f.txt", b"x", "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"),))
    with pytest.raises(BuildError, match="cannot be re-created"):
        bundle.write_to(tmp_path / "dest")  # files first, links last: d is a real folder by then, the link is refused
    assert not (outside / "f.txt").exists()


def test_damaged_bytes_and_oversized_bundles_are_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "r.jsonl").write_text('{"a": 1}\n')
    good = Bundle.of(src)
    rel, data, digest = good.files[0]
    with pytest.raises(BuildError, match="sha256"):
        replace(good, files=((rel, data + b"!", digest),)).write_to(tmp_path / "d1")
    with pytest.raises(BuildError, match="limit"):
        good.write_to(tmp_path / "d2", limit=3)
    with pytest.raises(BuildError, match="MiB to send"):
        Bundle.of(src, limit=3)
