"""One copy of the base model for the whole run, at one pinned revision; never imports kfp.

Without it every step that loads ``base_model`` (prepare, train, evaluate, export or merge) brings it again: from the
hub, into a pod whose cache starts empty, 16 GB a step for an 8B model in bf16; and a hub id without a revision may
resolve to another commit between the first step and the last. ``fetch`` resolves the id once to its commit and
downloads the files a step loads (top-level safetensors weights, configs, tokenizer files; never pickled weights, nor
the ``original/`` or ``onnx/`` copies some repos carry) into the run's artifact; the steps read that artifact
(``kfp_llmops.modeling.use_base_model``). A local or mounted folder (a PVC, ``/gcs/...``) is already one copy on
storage the steps read: it is pinned by its content digest and read in place.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from kfp_llmops.errors import UserInputError
from kfp_llmops.lineage import sha256_path
from kfp_llmops.modeling import BASE_MANIFEST, split_revision

COPY_DIR = "model"  # the weights' folder inside the artifact
# what a step loads: weights, configs and tokenizer files at the top of the repo
WANTED_SUFFIXES = (".safetensors", ".json", ".txt", ".model", ".jinja", ".tiktoken")
PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


@dataclass(frozen=True)
class FetchedBase:
    """What the run's steps load ``base_model`` from, as written to the artifact's ``base-model.json``."""

    base_model: str  # as the user gave it: the id the lineage names
    source: str  # "hub" or "local"
    revision: str  # the hub commit, or sha256:<digest> of a local folder's content
    load_from: str  # a path relative to the artifact (a copy), an absolute folder, or <repo>@<commit> (pinned only)
    copied: bool
    files: tuple[str, ...]
    size_bytes: int

    def write(self, artifact_dir: Path) -> None:
        info = {**asdict(self), "files": list(self.files)}
        Path(artifact_dir).mkdir(parents=True, exist_ok=True)
        (Path(artifact_dir) / BASE_MANIFEST).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


def wanted_files(names) -> list[str]:
    """The repo's files a step loads: top-level weights (safetensors only), configs and tokenizer files."""
    return sorted(n for n in names if "/" not in n and n.endswith(WANTED_SUFFIXES) and not n.startswith("."))


def _check_weights(files: list[str], where: str, all_names) -> None:
    if not any(f.endswith(".safetensors") for f in files):
        pickled = sorted(n for n in all_names if n.endswith(PICKLED_SUFFIXES))
        why = (f"it holds only pickled weights ({', '.join(pickled[:3])}), which are never unpickled here"
               if pickled else "it holds no weights at its top level")
        raise UserInputError(f"base model {where} has no safetensors weights: {why}; convert it to safetensors "
                             "(save_pretrained(..., safe_serialization=True)) or use a revision that has them")
    if "config.json" not in files:
        raise UserInputError(f"base model {where} has no config.json at its top level: not a transformers model folder")


def fetch(base_model: str, out_dir: str | os.PathLike, *, copy: bool = True) -> FetchedBase:
    """Resolves ``base_model`` (a hub id, ``id@revision``, or a folder) and, for a hub id with ``copy``, downloads the
    files a step loads into ``out_dir/model``; writes ``out_dir/base-model.json`` and returns what it says."""
    out_dir = Path(out_dir)
    name, revision = split_revision(base_model)
    folder = Path(os.path.expanduser(name))
    if folder.is_dir():
        files = wanted_files(p.relative_to(folder).as_posix() for p in folder.iterdir() if p.is_file())
        _check_weights(files, f"folder {folder}", [p.name for p in folder.iterdir()])
        fetched = FetchedBase(base_model, "local", "sha256:" + sha256_path(folder), str(folder.resolve()), False,
                              tuple(files), sum((folder / f).stat().st_size for f in files))
    elif folder.is_absolute() or name.startswith(("./", "../", "~")) or name.count("/") > 1:
        raise UserInputError(f"base model {base_model!r} is neither a folder here nor a hub id (org/name[@revision]): "
                             "no folder at that path")
    else:
        fetched = _fetch_from_hub(base_model, name, revision, out_dir, copy)
    fetched.write(out_dir)
    return fetched


def _hub_error(base_model: str, exc: Exception) -> UserInputError:
    from huggingface_hub import constants, errors

    kind = type(exc).__name__
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    if isinstance(exc, errors.GatedRepoError):
        why = "the repository is gated: accept its terms and give the step a token (HF_TOKEN)"
    elif isinstance(exc, errors.RevisionNotFoundError):
        why = "no such revision (branch, tag or commit) in the repository"
    elif isinstance(exc, errors.RepositoryNotFoundError):
        why = "no such repository, or it is private and the step has no token for it (HF_TOKEN)"
    else:
        why = f"the hub could not be reached or refused the request ({kind}: {first}); HF_ENDPOINT names a mirror"
    return UserInputError(f"cannot fetch the base model {base_model!r} from {constants.ENDPOINT}: {why}")


def _fetch_from_hub(base_model: str, name: str, revision: str | None, out_dir: Path, copy: bool) -> FetchedBase:
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi()
    try:
        info = api.model_info(name, revision=revision, files_metadata=True)
    except Exception as exc:  # huggingface_hub's HTTP errors and the transport's
        raise _hub_error(base_model, exc) from None
    sizes = {s.rfilename: (s.size or 0) for s in info.siblings or []}
    files = wanted_files(sizes)
    _check_weights(files, f"{name}@{info.sha}", sizes)
    if copy:
        target = out_dir / COPY_DIR
        try:  # the commit, not the branch: every file comes from the same one even if the branch moves meanwhile
            snapshot_download(name, revision=info.sha, allow_patterns=files, local_dir=target)
        except Exception as exc:
            raise _hub_error(base_model, exc) from None
        shutil.rmtree(target / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        missing = [f for f in files if not (target / f).is_file()]
        if missing:
            raise UserInputError(f"base model {name}@{info.sha}: the download lacks {', '.join(missing[:5])}")
        size = sum((target / f).stat().st_size for f in files)
        return FetchedBase(base_model, "hub", info.sha, COPY_DIR, True, tuple(files), size)
    return FetchedBase(base_model, "hub", info.sha, f"{name}@{info.sha}", False, tuple(files),
                       sum(sizes[f] for f in files))
