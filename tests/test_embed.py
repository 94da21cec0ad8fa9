"""The installable core: `cmake --install` gives headers, libjitvision_core and a CMake package; examples/embed, built
against that install with find_package(jitvision), detects exactly what `jitvision detect` detects."""
import json
import os
import shutil
import subprocess
import sys

import pytest

BUILD_TIMEOUT_S = 300


def run(args, **kw):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, **kw)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def prefix(repo_root, jitvision_bin, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("install")
    run(["cmake", "--install", repo_root / "build", "--prefix", prefix])
    return prefix


@pytest.fixture(scope="module")
def embed_bin(repo_root, prefix, tmp_path_factory):
    import torch

    build = tmp_path_factory.mktemp("embed-build")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(["cmake", "-S", repo_root / "examples" / "embed", "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_PREFIX_PATH={prefix};{torch.utils.cmake_prefix_path}"])
    run(["cmake", "--build", build, "-j", "2"])
    return build / "embed"


@pytest.fixture(scope="module")
def digits_image(repo_root, tmp_path_factory):
    """A generated digits photo (fonts only: no external data)."""
    out = tmp_path_factory.mktemp("digits")
    env = {**os.environ, "PYTHONPATH": str(repo_root / "python")}
    env.pop("JITVISION_DATA_DIR", None)
    run([sys.executable, "-m", "jitvision", "data", "digits", "--out", out, "--n", "1", "--split", "val",
         "--seed", "3", "--font-fraction", "1"], env=env)
    return next((out / "images" / "val").iterdir())


def test_install_tree_holds_the_library_package_and_executable(repo_root, prefix, digits_image, tmp_path):
    headers = {p.name for p in (prefix / "include" / "jitvision" / "core").iterdir()}
    assert {"detector.hpp", "model.hpp", "errors.hpp", "version.hpp"} <= headers
    version = (repo_root / "VERSION").read_text().strip()
    assert f'#define JITVISION_VERSION "{version}"' in (prefix / "include/jitvision/core/version.hpp").read_text()
    assert (prefix / "lib" / "libjitvision_core.a").is_file()
    package = prefix / "lib" / "cmake" / "jitvision"
    for name in ("jitvisionConfig.cmake", "jitvisionConfigVersion.cmake", "jitvisionTargets.cmake",
                 "jitvisionTorchCudaStub.cmake"):
        assert (package / name).is_file(), name
    assert "jitvision::core" in (package / "jitvisionTargets.cmake").read_text()
    assert (prefix / "share" / "jitvision" / "models" / "digits_yolov5n.torchscript").is_file()
    proc = run([prefix / "bin" / "jitvision", "--version"])  # runs without LD_LIBRARY_PATH
    assert proc.stdout.startswith(f"jitvision {version}\n")
    # the installed binary finds its bundled reader in share/jitvision/models, not in the source tree
    env = {k: v for k, v in os.environ.items() if k != "JITVISION_MODELS_DIR"}
    proc = run([prefix / "bin" / "jitvision", "digits", digits_image, "--json"], cwd=tmp_path, env=env)
    assert json.loads(proc.stdout)["digit"] in range(10)


def test_embedded_detector_matches_the_app(repo_root, run_cli, embed_bin, digits_image):
    model = repo_root / "models" / "digits_yolov5n.torchscript"
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same float reduction order in both processes
    embedded = json.loads(run([embed_bin, model, digits_image], env=one_thread).stdout)["detections"]
    proc = run_cli(["detect", "--model", model, "--source", digits_image, "--json", "-", "--workers", "1"],
                   env=one_thread)
    assert proc.returncode == 0, proc.stderr
    app = json.loads(proc.stdout.splitlines()[0])["detections"]
    assert len(embedded) >= 3
    assert embedded == app


def test_embedded_errors_are_one_line_with_the_exit_code(repo_root, embed_bin, digits_image, tmp_path):
    broken = tmp_path / "broken.torchscript"
    broken.write_bytes(b"not a model")
    proc = subprocess.run([str(embed_bin), str(broken), str(digits_image)], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("embed: error: model file")
