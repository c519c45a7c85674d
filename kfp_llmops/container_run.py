"""kfp.local's ``DockerRunner``, set up to run every step in our image as a cluster would.

- **Inputs where the steps look for them**: every local path among the run's arguments (model folders, datasets, a
  ``sqlite:///`` registry, ``train_config.checkpoint_dir``) is bind-mounted at the same path: read-only, except the
  registry's folder and the checkpoint folder, which the steps write. kfp.local itself mounts only the pipeline root.
- **Restricted**: read-only root filesystem with a tmpfs at ``/tmp`` (where the image points HOME's caches),
  ``cap_drop=ALL``, ``no-new-privileges``, a non-root user: Kubernetes Pod Security "restricted".
- **Whose files**: a container runs as the invoking user's uid/gid, so the run's files are theirs; invoked as root it
  runs as the image's user (10001), which is handed the pipeline root and the writable mounts instead. Either way the
  image itself is not loosened.
- **Why a step died**: a container killed for memory or by a signal is named as such (kfp.local reports only
  FAILURE; and with its ``auto_remove`` a container gone before its exit code was read counted as a success).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from kfp_llmops.errors import UserInputError

IMAGE_USER = (10001, 10001)  # containers/runtime.Dockerfile's kfp user
CHECKPOINT_KEYS = ("checkpoint_dir",)


@dataclass(frozen=True)
class ContainerPolicy:
    """How each step's container is started. The defaults are Pod Security "restricted" on a read-only root."""

    read_only: bool = True
    tmpfs_size: str = "8g"  # /tmp: caches, kfp's component module, torch.compile's kernels
    mem_limit: str | None = None  # e.g. "4g"; a step over it is killed and reported as out of memory
    network_mode: str = "host"  # our engines run with --bridge=none; a step may talk to a local MLflow server
    environment: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mem_limit is not None and not str(self.mem_limit).rstrip("bkmgBKMG").isdigit():
            raise UserInputError(f"container memory limit must look like 512m or 4g, got {self.mem_limit!r}")


@dataclass
class Mount:
    path: Path
    writable: bool


def docker_client():
    """A client of a running Docker engine, or an error that says how to get one."""
    try:
        import docker
    except ImportError:  # pragma: no cover - kfp's [local] dependency; the image and the venv have it
        raise UserInputError("--runner docker needs the docker Python package (pip install docker)") from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and the transport's own errors
        raise UserInputError(
            f"--runner docker needs a Docker engine and none answers at {where} ({type(exc).__name__}); "
            "`make image` starts one (dockerd --bridge=none) and builds the image") from None
    return client


def ensure_image(client, image: str) -> str:
    """Finds ``image`` on the engine or pulls it (from a mirror when KFP_LLMOPS_IMAGE_REGISTRY names one);
    returns "local" or "pulled"."""
    import docker

    try:
        client.images.get(image)
        return "local"
    except docker.errors.ImageNotFound:
        pass
    repository, _, tag = image.rpartition(":")
    try:
        client.images.pull(repository, tag=tag)
    except docker.errors.DockerException as exc:
        raise UserInputError(
            f"the image {image} is not on this Docker engine and could not be pulled "
            f"({str(exc).splitlines()[0][:200]}); build it with `make image`, or point KFP_LLMOPS_IMAGE_REGISTRY at "
            "a registry that holds it") from None
    return "pulled"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def absolute_paths(arguments: dict) -> dict:
    """The run's top-level string arguments that name an existing relative path, made absolute (a container's working
    directory is not this one's)."""
    def absolute(value):
        if isinstance(value, str) and value and not value.startswith("/") and "://" not in value and "\n" not in value:
            try:
                if Path(value).exists():
                    return str(Path(value).resolve())
            except OSError:
                pass
        return value

    return {k: absolute(v) for k, v in arguments.items()}


def local_mounts(arguments: dict, pipeline_root: Path) -> list[Mount]:
    """The host paths the run's arguments name, each once (a path inside another mounted one is left to its parent),
    none inside the pipeline root (kfp.local mounts it)."""
    wanted: dict[Path, bool] = {}
    checkpoint_dirs = [v for k in CHECKPOINT_KEYS for cfg in arguments.values() if isinstance(cfg, dict)
                       for v in [cfg.get(k)] if isinstance(v, str) and v]
    for value in _strings(arguments):
        writable = False
        if value.startswith("sqlite:///"):
            path, writable = Path(value[len("sqlite:///"):]).parent, True  # SQLite writes its journal beside the file
        elif value in checkpoint_dirs:
            path, writable = Path(value), True
            path.mkdir(parents=True, exist_ok=True)
        elif value.startswith("/") and "\n" not in value and len(value) < 4096:
            path = Path(value)
        else:
            continue
        try:
            if not path.exists():
                continue
        except OSError:
            continue
        path = path.resolve()
        wanted[path] = wanted.get(path, False) or writable
    root = pipeline_root.resolve()
    mounts = []
    for path in sorted(wanted):
        if path == root or root in path.parents:
            continue
        parent = next((m for m in mounts if m.path in path.parents), None)
        if parent and (parent.writable or not wanted[path]):
            continue
        mounts.append(Mount(path, wanted[path]))
    return mounts


def container_user(owned: list[Path]) -> str:
    """The user a step runs as: the invoking user, or, invoked as root, the image's user, who is then handed
    ``owned`` (the pipeline root and the writable mounts; their existing files included)."""
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        return f"{uid}:{gid}"
    for top in owned:
        os.chown(top, *IMAGE_USER)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), *IMAGE_USER, follow_symlinks=False)
    return f"{IMAGE_USER[0]}:{IMAGE_USER[1]}"


def check_readable(mounts: list[Mount], user: str) -> None:
    """Invoked as root, steps run as the image's user: each input must be readable by others (a 0600 file of root's
    would fail the step deep inside; named here instead)."""
    if not user.startswith(f"{IMAGE_USER[0]}:") or os.getuid() != 0:
        return
    for mount in (m for m in mounts if not m.writable):
        paths = [mount.path, *mount.path.rglob("*")] if mount.path.is_dir() else [mount.path]
        for path in paths:
            mode = path.stat().st_mode
            need = 0o005 if path.is_dir() else 0o004
            if path.stat().st_uid != IMAGE_USER[0] and mode & need != need:
                raise UserInputError(
                    f"{path} is not readable by the steps' user (uid {IMAGE_USER[0]}; mode {oct(mode & 0o777)}): "
                    f"chmod o+r{'x' if path.is_dir() else ''} it, or run as a non-root user (steps then run as you)")


def docker_runner(arguments: dict, pipeline_root: Path, policy: ContainerPolicy | None = None):
    """The kfp.local ``DockerRunner`` for this run (the engine is checked first: a clear error if none runs)."""
    import docker
    from kfp import local

    policy = policy or ContainerPolicy()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    mounts = local_mounts(arguments, pipeline_root)
    user = container_user([pipeline_root.resolve(), *(m.path for m in mounts if m.writable)])
    check_readable(mounts, user)
    run_args = dict(
        mounts=[docker.types.Mount(str(m.path), str(m.path), type="bind", read_only=not m.writable) for m in mounts],
        user=user, network_mode=policy.network_mode, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        environment={"HF_HUB_OFFLINE": "1", **policy.environment} if _offline(arguments)
        else {**hub_environment(), **policy.environment},
    )
    if policy.read_only:
        run_args.update(read_only=True, tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={policy.tmpfs_size},mode=1777"})
    if policy.mem_limit:
        run_args.update(mem_limit=policy.mem_limit, memswap_limit=policy.mem_limit)
    return local.DockerRunner(**run_args)


HUB_VARIABLES = ("HF_ENDPOINT", "HF_TOKEN")  # a hub mirror, a token for gated or private models


def hub_environment() -> dict:
    """What the steps need of this shell's hub settings when the base model is a hub id (as a cluster passes them in
    a Secret or the pod's env)."""
    return {k: os.environ[k] for k in HUB_VARIABLES if os.environ.get(k)}


def _offline(arguments: dict) -> bool:
    """A run whose base model is a local folder needs no hub (and a closed network has none)."""
    base = arguments.get("base_model")
    return isinstance(base, str) and base.startswith("/")


@dataclass
class ContainerEnd:
    image: str
    exit_code: int
    oom_killed: bool

    @property
    def reason(self) -> str | None:
        if self.oom_killed:
            return "its container ran out of memory (killed at its memory limit)"
        if self.exit_code == 137:
            return "its container was killed (SIGKILL: docker kill, or the kernel)"
        if self.exit_code == 143:
            return "its container was stopped (SIGTERM)"
        return None


def run_container(client, image: str, command: list[str], volumes: dict, ends: list, **run_args) -> int:
    """What kfp.local's ``run_docker_container`` does, with the exit read before the container is removed."""
    container = client.containers.run(image=image, command=command, detach=True, stdout=True, stderr=True,
                                      volumes=volumes, **run_args)
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        code = int(container.wait()["StatusCode"])
        container.reload()
        end = ContainerEnd(image, code, bool(container.attrs.get("State", {}).get("OOMKilled")))
        ends.append(end)
        if end.reason:
            print(f"kfp-llmops: the step failed: {end.reason}", flush=True)
        return code
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@contextlib.contextmanager
def containers_reported(ends: list):
    """kfp.local's Docker task handler, for the duration of a run, starting containers through ``run_container``."""
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container

    def patched(client, image, command, volumes, **run_args):
        return run_container(client, image, command, volumes, ends, **run_args)

    docker_task_handler.run_docker_container = patched
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original
