"""Content digests and the lineage metadata every artifact carries."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 1 << 20


def sha256_path(path: str | os.PathLike, *, exclude: tuple[str, ...] = ()) -> str:
    """sha256 of a file, or of a directory (its files' relative paths and contents, in sorted order; files whose
    relative path is in ``exclude`` are left out)."""
    p = Path(path)
    digest = hashlib.sha256()
    if p.is_file():
        _update_file(digest, p)
        return digest.hexdigest()
    if not p.is_dir():
        raise FileNotFoundError(f"no file or directory at {p}")
    for f in sorted(x for x in p.rglob("*") if x.is_file() and x.relative_to(p).as_posix() not in exclude):
        digest.update(f.relative_to(p).as_posix().encode() + b"\0")
        _update_file(digest, f)
    return digest.hexdigest()


def _update_file(digest, path: Path) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)


def lineage(*, path: str | os.PathLike, parents: dict[str, str] | None = None, **extra) -> dict:
    """Metadata for an artifact: its content digest, the URIs of the artifacts it came from, and ``extra``."""
    meta = {"sha256": sha256_path(path), "parents": dict(parents or {})}
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


def _umask_mode(base: int) -> int:
    """``base`` (0o777 for a folder, 0o666 for a file) under this process's umask: the mode a plain ``open`` or
    ``mkdir`` gives. tempfile makes its files and folders 0600/0700, which would leak into the artifact and lock out
    the next step when it runs as another user (a container's non-root user reading the host's files)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def umask_permissions(root: str | os.PathLike) -> None:
    """Gives ``root`` and everything under it the modes of a plain ``mkdir``/``open`` under the umask (executable
    files stay executable). transformers' ``save_pretrained`` and tempfile write 0600/0700, which a step running as
    another user (the image's, reading a root-owned folder) cannot read."""
    root = Path(root)
    folder, file = _umask_mode(0o777), _umask_mode(0o666)
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(folder)
        else:
            path.chmod(file | (path.stat().st_mode & 0o111 & folder))


@contextmanager
def atomic_dir(dest: str | os.PathLike):
    """Yields a temporary directory beside ``dest`` that becomes ``dest`` only if the block succeeds.

    A failed step therefore never leaves a half-written artifact behind.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        umask_permissions(tmp)
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        tmp.replace(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_file(dest: str | os.PathLike):
    """Yields a temporary file path that replaces ``dest`` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            tmp.chmod(_umask_mode(0o666))
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
