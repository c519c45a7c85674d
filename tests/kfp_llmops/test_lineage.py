import pytest

from kfp_llmops.lineage import atomic_dir, atomic_file, lineage, sha256_path


def test_sha256_of_a_file_matches_hashlib(tmp_path):
    import hashlib

    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    assert sha256_path(f) == hashlib.sha256(b"hello").hexdigest()


def test_sha256_of_a_directory_covers_names_and_contents(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_text("1")
    first = sha256_path(d)
    (d / "a").write_text("2")
    assert sha256_path(d) != first
    (d / "a").write_text("1")
    assert sha256_path(d) == first
    (d / "a").rename(d / "b")
    assert sha256_path(d) != first


def test_lineage_records_digest_parents_and_extra(tmp_path):
    f = tmp_path / "x"
    f.write_text("x")
    meta = lineage(path=f, parents={"dataset": "gs://b/d"}, rows=3, skipped=None)
    assert meta == {"sha256": sha256_path(f), "parents": {"dataset": "gs://b/d"}, "rows": 3}


def test_atomic_dir_leaves_nothing_behind_on_failure(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(dest) as tmp:
            (tmp / "half").write_text("written")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_and_file_replace_on_success(tmp_path):
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "f").write_text("ok")
    with atomic_file(tmp_path / "g") as tmp:
        tmp.write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "out"]
    assert (tmp_path / "out" / "f").read_text() == "ok"


def test_digest_can_leave_out_files(tmp_path):
    from kfp_llmops.lineage import sha256_path

    (tmp_path / "model.onnx").write_bytes(b"weights")
    (tmp_path / "export.json").write_text('{"latency_ms": 1.0}')
    before = sha256_path(tmp_path, exclude=("export.json",))
    (tmp_path / "export.json").write_text('{"latency_ms": 2.0}')
    assert sha256_path(tmp_path, exclude=("export.json",)) == before != sha256_path(tmp_path)
