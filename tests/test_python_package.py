"""The installed Python package: its version is the project's one (the top-level VERSION file, as the C++ app's)."""
import subprocess
import sys
from pathlib import Path

VERSION = (Path(__file__).resolve().parents[1] / "VERSION").read_text().strip()


def test_python_version_is_the_projects():
    proc = subprocess.run([sys.executable, "-m", "jitvision", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"jitvision {VERSION}"


def test_cpp_version_is_the_same(run_cli):
    proc = run_cli(["--version"])
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == f"jitvision {VERSION}"
