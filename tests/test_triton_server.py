"""End to end against a real Triton Inference Server: the tritonserver of `make triton-env` (the nvidia-pytriton
wheel, Python backend) started once on free ports with a repository written by `triton export`, and the client
`python -m jitvision triton detect` run with that environment's Python (tritonclient lives there)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jitvision.__main__ import main
from jitvision.triton.serve import ServerPorts, TritonNotInstalledError, find_install, start_server

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "yolov5n"
READY_TIMEOUT_S = 60
CLIENTS = 3
FRAMES_PER_CLIENT = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tritonserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    pytest.fail(f"tritonserver not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def triton_install():
    try:
        return find_install()
    except TritonNotInstalledError as exc:
        pytest.skip(f"no Triton server here: {exc}")


@pytest.fixture(scope="session")
def triton_server(triton_install, yolov5n_exports, tmp_path_factory):
    """URL of a server holding yolov5n (Python backend; a long queue delay so concurrent requests get batched)."""
    repo = tmp_path_factory.mktemp("triton-repo")
    assert main(["triton", "export", "--model", str(yolov5n_exports["dynamic"]), "--out", str(repo), "--name", MODEL,
                 "--queue-delay-us", "50000"]) == 0
    ports = ServerPorts(free_port(), free_port())
    log = repo.parent / "tritonserver.log"
    with open(log, "w") as sink:
        process = start_server(str(repo), ports, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports.http}"
    try:
        wait_ready(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_client(install, url: str, model: str, *sources, extra=()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "python"))
    return subprocess.run([str(install.env / "bin" / "python"), "-m", "jitvision", "triton", "detect", "--server", url,
                           "--server-model", model, *extra, *map(str, sources)],
                          capture_output=True, text=True, timeout=120, env=env)


def bus_video(data_dir: Path, path: Path, frames: int = 3) -> Path:
    """A short video panning over bus.jpg."""
    import cv2

    photo = cv2.imread(str(data_dir / "images" / "bus.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 800))
    for i in range(frames):
        writer.write(photo[i * 40:i * 40 + 800, i * 50:i * 50 + 640])
    writer.release()
    return path


def test_detections_through_triton_equal_local(triton_install, triton_server, yolov5n_exports, data_dir, tmp_path):
    from jitvision.yolov5.detect import detect, iter_frames, load_detector

    sources = [data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg",
               bus_video(data_dir, tmp_path / "bus.mp4")]
    proc = run_client(triton_install, triton_server, MODEL, *sources)
    assert proc.returncode == 0, proc.stderr
    remote = [json.loads(line) for line in proc.stdout.splitlines()]
    detector = load_detector(str(yolov5n_exports["dynamic"]))
    local = [detect(detector, image) for _, _, image in iter_frames([str(p) for p in sources])]
    assert [(r["source"], r["frame"]) for r in remote] == [(str(p), 0) for p in sources[:2]] + \
        [(str(sources[2]), i) for i in range(3)]
    for got, want in zip(remote, local):
        assert len(want) >= 2
        assert [d["cls"] for d in got["detections"]] == [d["cls"] for d in want]
        for g, w in zip(got["detections"], want):
            assert max(abs(a - b) for a, b in zip(g["xyxy"], w["xyxy"])) <= 1.0


def test_unknown_model_name_is_a_clear_error(triton_install, triton_server, data_dir):
    proc = run_client(triton_install, triton_server, "no_such_model", data_dir / "images" / "bus.jpg")
    assert proc.returncode == 3
    assert proc.stderr == "jitvision: error: Triton has no model 'no_such_model' ready " \
                          "(see the server's /v2/repository/index)\n"
    assert proc.stdout == ""


def test_unreachable_server_is_exit_4_after_retrying(triton_install, data_dir):
    port = free_port()
    proc = run_client(triton_install, f"http://127.0.0.1:{port}", MODEL, data_dir / "images" / "bus.jpg",
                      extra=("--reconnect", "1.5"))
    assert proc.returncode == 4
    assert proc.stderr.startswith(f"jitvision: error: Triton server 127.0.0.1:{port} unreachable (retried for 1.5 s): ")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


# A client process that does its imports, says so, and waits for the test's go, so that all clients send their
# first request together (the server's 50 ms queue delay then batches them on any machine, loaded or not).
CLIENT_AT_BARRIER = """
import pathlib, sys, time
import jitvision.triton.client, jitvision.yolov5.detect
from jitvision.__main__ import main
pathlib.Path(sys.argv[1]).touch()
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.005)
sys.exit(main(sys.argv[3:]))
"""


def test_concurrent_clients_are_all_served_and_batched(triton_install, triton_server, data_dir, tmp_path):
    stats_url = f"{triton_server}/v2/models/{MODEL}/stats"
    before = get_json(stats_url)["model_stats"][0]
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "python"))
    command = ["triton", "detect", "--server", triton_server, "--server-model", MODEL,
               *[str(data_dir / "images" / "bus.jpg")] * FRAMES_PER_CLIENT]
    procs = [subprocess.Popen([str(triton_install.env / "bin" / "python"), "-c", CLIENT_AT_BARRIER,
                               str(tmp_path / f"ready{i}"), str(go), *command], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(CLIENTS)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(CLIENTS)) and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.05)
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == FRAMES_PER_CLIENT and all(line["detections"] for line in lines)
    after = get_json(stats_url)["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == CLIENTS * FRAMES_PER_CLIENT
    executions = after["execution_count"] - before["execution_count"]
    assert executions < CLIENTS * FRAMES_PER_CLIENT  # some requests shared a forward
    assert max(int(b["batch_size"]) for b in after["batch_stats"]) > 1


def test_serve_without_the_triton_env_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JITVISION_TRITON_ENV", str(tmp_path / "no-env"))
    (tmp_path / "repo").mkdir()
    assert main(["triton", "serve", str(tmp_path / "repo")]) == 1
    err = capsys.readouterr().err
    assert err == f"jitvision: error: no tritonserver in {tmp_path / 'no-env'}: run `make triton-env` " \
                  "(installs nvidia-pytriton)\n"


def test_serve_refuses_a_repository_that_is_not_a_directory(tmp_path, capsys):
    assert main(["triton", "serve", str(tmp_path / "missing")]) == 5
    assert "is not a directory (write one with `triton export`)" in capsys.readouterr().err


def test_libtorch_configs_pass_the_real_servers_config_checks(triton_install, tmp_path):
    """The wheel's server lacks the LibTorch backend, but it parses and completes a libtorch config before looking
    for the backend: each entry must get exactly as far as 'unable to find backend library'."""
    repo = tmp_path / "repo"
    models = (("mnist", REPO_ROOT / "models" / "mnist.torchscript", "cpu"),
                                ("digits", REPO_ROOT / "models" / "digits_yolov5n.torchscript", "gpu"))
    for name, path, device in models:
        assert main(["triton", "export", "--model", str(path), "--out", str(repo), "--name", name,
                     "--backend", "libtorch", "--device", device]) == 0
    log = tmp_path / "tritonserver.log"
    with open(log, "w") as sink:
        process = start_server(str(repo), ServerPorts(free_port(), free_port()), stdout=sink, stderr=subprocess.STDOUT)
    try:
        process.wait(timeout=READY_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode != 0 and "Error parsing text-format" not in text
    for name, _, _ in models:
        assert f"failed to load '{name}' version 1: Invalid argument: unable to find backend library for backend " \
               "'pytorch'" in text, text[-3000:]
