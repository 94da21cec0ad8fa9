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
DIGITS_MODEL = "mnist"
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
    """URL of a server holding yolov5n (Python backend; a long queue delay so concurrent requests get batched) and
    the MNIST classifier."""
    repo = tmp_path_factory.mktemp("triton-repo")
    assert main(["triton", "export", "--model", str(yolov5n_exports["dynamic"]), "--out", str(repo), "--name", MODEL,
                 "--queue-delay-us", "50000"]) == 0
    assert main(["triton", "export", "--model", str(REPO_ROOT / "models" / "mnist.torchscript"), "--out", str(repo),
                 "--name", DIGITS_MODEL]) == 0
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
    """A short video panning over bus.jpg (back and forth every three frames)."""
    import cv2

    photo = cv2.imread(str(data_dir / "images" / "bus.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 800))
    for i in range(frames):
        j = i % 3
        writer.write(photo[j * 40:j * 40 + 800, j * 50:j * 50 + 640])
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
    host = triton_server.split("://", 1)[1]
    assert proc.stderr == f"jitvision: error: Triton server {host} has no model 'no_such_model' " \
                          "(see its /v2/repository/index)\n"
    assert proc.stdout == ""


def test_unreachable_server_is_exit_8_after_retrying(triton_install, data_dir):
    port = free_port()
    proc = run_client(triton_install, f"http://127.0.0.1:{port}", MODEL, data_dir / "images" / "bus.jpg",
                      extra=("--reconnect", "2"))
    assert proc.returncode == 8
    assert proc.stderr.startswith(f"jitvision: error: Triton server 127.0.0.1:{port} unreachable after 2 retries: ")
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


# --- the C++ client: `jitvision detect --server URL --server-model NAME` (native/remote) -------------------------


def read_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_detections(got: list, want: list) -> None:
    # Several sources are read at once: compare frame by frame, by source and index.
    got, want = (sorted(rs, key=lambda r: (r["source"], r["frame"])) for rs in (got, want))
    assert [(r["source"], r["frame"]) for r in got] == [(r["source"], r["frame"]) for r in want]
    for g, w in zip(got, want):
        assert [d["cls"] for d in g["detections"]] == [d["cls"] for d in w["detections"]]
        for a, b in zip(g["detections"], w["detections"]):
            assert max(abs(p - q) for p, q in zip(a["xyxy"], b["xyxy"])) <= 1.0


def test_cpp_detect_through_triton_equals_local(run_cli, triton_server, yolov5n_exports, data_dir, tmp_path):
    sources = ["--source", data_dir / "images" / "bus.jpg", "--source", bus_video(data_dir, tmp_path / "bus.mp4")]
    local = run_cli(["detect", "--model", yolov5n_exports["dynamic"], *sources, "--json", tmp_path / "local.jsonl"])
    assert local.returncode == 0, local.stderr
    remote = run_cli(["detect", "--server", triton_server, "--server-model", MODEL, *sources,
                      "--json", tmp_path / "remote.jsonl"])
    assert remote.returncode == 0, remote.stderr
    want = read_lines(tmp_path / "local.jsonl")
    assert len(want) == 4 and all(len(r["detections"]) >= 2 for r in want)
    assert_same_detections(read_lines(tmp_path / "remote.jsonl"), want)


def test_cpp_unknown_model_is_exit_3_in_one_line(run_cli, triton_server, data_dir):
    proc = run_cli(["detect", "--server", triton_server, "--server-model", "no_such_model",
                    "--source", data_dir / "images" / "bus.jpg"])
    assert proc.returncode == 3
    assert proc.stderr == f"jitvision: error: inference server {triton_server} has no model 'no_such_model' " \
                          "(see its /v2/repository/index)\n"
    assert proc.stdout == ""


def test_cpp_unreachable_server_is_exit_8_within_the_reconnect_bound(run_cli, data_dir):
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    proc = run_cli(["detect", "--server", url, "--server-model", MODEL, "--reconnect", "2",
                    "--source", data_dir / "images" / "bus.jpg"], timeout=60)
    assert proc.returncode == 8
    assert proc.stderr.startswith(f"jitvision: error: inference server {url} unreachable after 2 retries: ")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert time.monotonic() - start < 20  # back-off 0.2 + 0.4 s, plus the process start on a loaded machine


@pytest.mark.parametrize("flags, message", [
    (["--model", "m.torchscript", "--server", "http://127.0.0.1:1", "--server-model", MODEL],
     "--model and --server exclude each other: give one"),
    ([], "detect needs --model FILE or --server URL --server-model NAME"),
    (["--server", "http://127.0.0.1:1"], "--server needs --server-model NAME"),
    (["--server", "http://127.0.0.1:1", "--server-model", "../x"],
     "--server-model '../x': expected letters, digits, '_', '.' or '-'"),
])
def test_cpp_server_flags_are_checked(run_cli, tmp_path, flags, message):
    proc = run_cli(["detect", *flags, "--source", tmp_path])
    assert proc.returncode == 2
    assert proc.stderr == f"jitvision: error: {message}\n"


class TcpProxy:
    """Forwards 127.0.0.1:port to the server until stop(), which closes the port and cuts every connection."""

    def __init__(self, target_url: str):
        import threading

        host, port = target_url.split("://", 1)[1].split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets, self.threading = [], threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self.threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone leaves the port open
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_cpp_server_lost_mid_run_is_exit_8_with_outputs_kept(jitvision_bin, triton_server, data_dir, tmp_path):
    video = bus_video(data_dir, tmp_path / "long.mp4", frames=60)
    out = tmp_path / "remote.jsonl"
    proxy = TcpProxy(triton_server)
    process = subprocess.Popen([str(jitvision_bin), "detect", "--server", proxy.url, "--server-model", MODEL,
                                "--source", str(video), "--json", str(out), "--reconnect", "2", "--workers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.is_file() and out.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    proxy.stop()
    stopped = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 8, err
    assert time.monotonic() - stopped < 20
    errors = [line for line in err.splitlines() if line.startswith("jitvision: error: ")]
    assert errors == [errors[0]] and f"inference server {proxy.url} unreachable after 2 retries" in errors[0]
    kept = read_lines(out)  # whole lines, in frame order
    assert 2 <= len(kept) < 60 and [r["frame"] for r in kept] == list(range(len(kept)))


def test_cpp_digits_through_triton_equal_local(run_cli, triton_server, tmp_path):
    import cv2
    import numpy as np

    images = []
    for digit in "3710":
        image = np.full((64, 64, 3), 255, np.uint8)
        cv2.putText(image, digit, (14, 52), cv2.FONT_HERSHEY_SIMPLEX, 1.8, (0, 0, 0), 5)
        images.append(tmp_path / f"{digit}.png")
        cv2.imwrite(str(images[-1]), image)
    local = run_cli(["digits", "--json", "--batch", "3", *images])
    remote = run_cli(["digits", "--server", triton_server, "--server-model", DIGITS_MODEL, "--json", "--batch", "3",
                      *images])
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    want, got = map(lambda p: [json.loads(line) for line in p.stdout.splitlines()], (local, remote))
    assert [r["source"] for r in got] == [str(p) for p in images] == [r["source"] for r in want]
    assert [r["digit"] for r in got] == [r["digit"] for r in want]
    for g, w in zip(got, want):
        assert max(abs(a - b) for a, b in zip(g["probs"], w["probs"])) < 1e-4


def test_cpp_digits_server_refuses_a_detector_and_live_mode(run_cli, triton_server, tmp_path):
    proc = run_cli(["digits", "--server", triton_server, "--server-model", MODEL, tmp_path / "x.png"])
    assert proc.returncode == 3
    assert proc.stderr == f"jitvision: error: model file triton:{triton_server}/{MODEL} is a 'detect' model, " \
                          "not a digit classifier\n"
    proc = run_cli(["digits", "--server", triton_server, "--server-model", DIGITS_MODEL, "--source", tmp_path])
    assert proc.returncode == 2
    assert proc.stderr == "jitvision: error: --server applies to digit images only, not to live mode (--source)\n"
