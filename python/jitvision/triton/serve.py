"""``python -m jitvision triton serve REPO``: the real ``tritonserver`` bundled in the ``nvidia-pytriton`` wheel.

``make triton-env`` installs that wheel into ``.venv-triton`` (beside ``.venv``, whose torch it sees through a
``.pth`` file) and puts the Python-backend stub for its Python version where the server looks for it. This module
only finds the binary, its libraries and backends in that environment and starts it on a repository written by
``triton export``: a local server for trials and for the tests. Production runs NVIDIA's server image
(docs/scale-out.md), which also has the LibTorch backend that the wheel lacks.
"""
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, NoReturn, Optional

from jitvision.errors import InputError, JitvisionError

ENV_VARIABLE = "JITVISION_TRITON_ENV"
DEFAULT_ENV = Path(__file__).resolve().parents[3] / ".venv-triton"
STUB = "triton_python_backend_stub"


class TritonNotInstalledError(JitvisionError):
    """The Triton environment (``make triton-env``) is missing or incomplete (exit code 1: set-up, not input)."""


@dataclass(frozen=True)
class TritonInstall:
    env: Path  # the virtual environment
    server: Path  # bin/tritonserver
    backends: Path  # backend directory (python/ with its stub)
    libs: Path  # the wheel's bundled shared libraries


def triton_env() -> Path:
    return Path(os.environ.get(ENV_VARIABLE) or DEFAULT_ENV)


def find_install(env: Optional[Path] = None) -> TritonInstall:
    """The server inside ``env`` (default: $JITVISION_TRITON_ENV or .venv-triton); TritonNotInstalledError saying
    what is missing."""
    env = env or triton_env()
    found = sorted(env.glob("lib/python3*/site-packages/pytriton/tritonserver/bin/tritonserver"))
    if not found:
        raise TritonNotInstalledError(f"no tritonserver in {env}: run `make triton-env` (installs nvidia-pytriton)")
    root = found[0].parents[1]
    install = TritonInstall(env, found[0], root / "backends", root.parents[1] / "nvidia_pytriton.libs")
    if not (install.backends / "python" / STUB).is_file():
        raise TritonNotInstalledError(f"{install.backends / 'python' / STUB} is missing: run `make triton-env`")
    return install


@dataclass(frozen=True)
class ServerPorts:
    http: int = 8000
    grpc: int = 8001


def server_command(install: TritonInstall, repo: str, ports: ServerPorts) -> List[str]:
    return [str(install.server), f"--model-repository={Path(repo).resolve()}",
            f"--backend-directory={install.backends}", f"--http-port={ports.http}", f"--grpc-port={ports.grpc}",
            "--allow-metrics=false", "--log-verbose=0"]


def server_environment(install: TritonInstall) -> Dict[str, str]:
    """The wheel's libraries on LD_LIBRARY_PATH; the environment's bin first on PATH, which is how the Python
    backend's embedded interpreter finds that environment (and through its .pth, torch)."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(install.libs), env.get("LD_LIBRARY_PATH")) if p)
    env["PATH"] = os.pathsep.join((str(install.env / "bin"), env.get("PATH", "")))
    return env


def _checked(repo: str) -> TritonInstall:
    if not Path(repo).is_dir():
        raise InputError(f"model repository {repo} is not a directory (write one with `triton export`)")
    return find_install()


def start_server(repo: str, ports: ServerPorts, **popen) -> subprocess.Popen:
    """Start tritonserver on ``repo`` in a child process (InputError when it is not a directory); the caller waits
    for it to be ready and stops it."""
    install = _checked(repo)
    return subprocess.Popen(server_command(install, repo, ports), env=server_environment(install), **popen)


def serve(repo: str, ports: ServerPorts) -> NoReturn:
    """Replace this process by the server, so that signals (Ctrl-C, a service manager's SIGTERM) reach it."""
    install = _checked(repo)
    command = server_command(install, repo, ports)
    sys.stdout.flush()
    os.execve(command[0], command, server_environment(install))
