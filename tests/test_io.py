import os

import pytest

from saraikit.core.io import atomic_copy, atomic_path, atomic_write_json, atomic_write_text, atomic_write_yaml


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["a.txt"]
    atomic_write_json(tmp_path / "b.json", {"x": 1})
    atomic_write_yaml(tmp_path / "c.yaml", {"y": [1, 2]})
    atomic_copy(tmp_path / "b.json", tmp_path / "d.json")
    assert (tmp_path / "d.json").read_text() == (tmp_path / "b.json").read_text()
    assert "y:" in (tmp_path / "c.yaml").read_text()


def test_a_failing_write_keeps_the_earlier_file_and_cleans_up(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "earlier")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "earlier"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_files_get_the_usual_permissions_not_mkstemps_private_ones(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~mask
