"""Start-up cost: the app links only LibTorch's CPU library and loads libtorch_cuda (and the CUDA libraries behind it)
only where a CUDA driver is installed. A stand-in libcuda.so.1 drives the GPU-host branch on a machine without one."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

import pytest

# Measured on the 2-core dev VM: --version peaks at ~190 MB with the CPU library alone and ~590 MB when libtorch_cuda
# is loaded, so this bound tells the two apart with room for allocator noise.
VERSION_PEAK_RSS_MB = 350


def has_cuda_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


# Runs the command as the child of a fresh, small interpreter, which writes the child's peak RSS (KiB) to the file
# descriptor it is given. A child forked straight from pytest would inherit pytest's own high-water mark (Linux keeps
# it across exec), which after many tests is over a gigabyte.
_MEASURE = """
import os, sys
report, command = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    os.execv(command[0], command)
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_mb(args, env=None) -> tuple[int, float, str]:
    """Exit status, peak RSS in MB of that one process, and its stdout."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.run([sys.executable, "-c", _MEASURE, str(write_end), *map(str, args)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                              pass_fds=(write_end,), timeout=120)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        peak_kib = int(pipe.read() or 0)
    return proc.returncode, peak_kib / 1024.0, proc.stdout


def backend_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("CUDA backend: ")]
    assert len(lines) == 1, f"`jitvision --version` prints no single 'CUDA backend:' line:\n{stdout}"
    return lines[0]


def test_binary_does_not_link_the_cuda_library(jitvision_bin):
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("ldd is not installed")
    proc = subprocess.run([ldd, str(jitvision_bin)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "libtorch_cpu.so" in proc.stdout
    for name in ("libtorch_cuda.so", "libc10_cuda.so", "libcublas", "libcudnn", "libtorch.so "):
        assert name not in proc.stdout, f"{jitvision_bin} depends on {name}:\n{proc.stdout}"


def test_version_loads_the_cuda_backend_only_with_a_driver(jitvision_bin):
    code, peak, out = peak_rss_mb([jitvision_bin, "--version"])
    assert code == 0
    line = backend_line(out)
    if has_cuda_driver():
        assert line.startswith("CUDA backend: loaded from ") and "libtorch_cuda.so" in line
    else:
        assert line == "CUDA backend: not loaded: no CUDA driver (libcuda.so.1) on this machine"
        assert "CUDA available: no" in out
        assert peak < VERSION_PEAK_RSS_MB, f"--version peaked at {peak:.0f} MB: is libtorch_cuda loaded?"


@pytest.fixture
def stand_in_driver(tmp_path):
    """A libcuda.so.1 with no driver entry points: enough to make the app take its GPU-host branch."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-in libcuda.so.1")
    source = tmp_path / "driver.c"
    source.write_text("int jitvision_stand_in_driver;\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(tmp_path / "libcuda.so.1"), str(source)], check=True, timeout=60)
    return {**os.environ, "LD_LIBRARY_PATH": f"{tmp_path}:{os.environ.get('LD_LIBRARY_PATH', '')}"}


def test_a_driver_makes_the_app_load_the_cuda_backend(repo_root, jitvision_bin, stand_in_driver, run_cli):
    if has_cuda_driver():
        pytest.skip("this machine has a real CUDA driver; the stand-in would not be the one loaded")
    code, peak, out = peak_rss_mb([jitvision_bin, "--version"], env=stand_in_driver)
    assert code == 0
    assert backend_line(out).startswith("CUDA backend: loaded from ")
    assert "CUDA available: no" in out  # loaded, but the stand-in drives no GPU
    assert peak > VERSION_PEAK_RSS_MB  # the CUDA libraries really were mapped
    # the loaded backend answers like a linked one: no GPU, so --device cuda is refused with exit 4
    proc = run_cli(["bench", "--model", repo_root / "models" / "mnist.torchscript", "--device", "cuda", "--iters", "1"],
                   env=stand_in_driver)
    assert proc.returncode == 4
    assert "no CUDA GPU is available" in proc.stderr
