"""Helpers for the tests that drive `jitvision detect`: a loopback MJPEG-over-HTTP server that can serve, stall and
die, synthetic frames, and a YOLOv5n whose detections are always empty (for plumbing tests without the real data)."""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]

# jitvision's class_colour() (native/io/src/sinks.cpp) for the classes the tests look for, as BGR.
CLASS_COLOUR_BGR = {0: (75, 25, 230), 5: (180, 30, 145)}  # person, bus


def textured_photo(height: int = 480, width: int = 640) -> np.ndarray:
    """A deterministic 'photo' with structure at several scales, for frames that move over it."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) % 256)], axis=-1).astype(np.uint8)
    for i in range(12):
        cv2.circle(image, (40 + i * 50, 60 + (i * 37) % (height - 120)), 18 + i % 4 * 6,
                   (255 - i * 20, 40 + i * 15, 200), -1)
    return image


def moving_frames(photo: np.ndarray, count: int, size=(320, 240)) -> List[np.ndarray]:
    """`count` crops of `size` (w, h) sliding diagonally over `photo`."""
    w, h = size
    span_x, span_y = photo.shape[1] - w, photo.shape[0] - h
    return [photo[(i * 7) % span_y:(i * 7) % span_y + h, (i * 11) % span_x:(i * 11) % span_x + w].copy()
            for i in range(count)]


def video_frame_count(path: Path) -> tuple:
    """(frames decoded, (h, w)) of a video file, read to the end."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} is not a readable video"
    count, shape = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        shape = frame.shape[:2]
    capture.release()
    return count, shape


class MjpegServer:
    """multipart/x-mixed-replace JPEG stream on 127.0.0.1. ``stall_first_after=N``: the first connection sends N
    frames and then nothing (socket kept open); later connections serve normally. ``kill()`` closes the port and
    every connection for good. ``port``: listen there (0: any free port)."""

    def __init__(self, frame: Callable[[int], np.ndarray], fps: float = 25.0, stall_first_after: Optional[int] = None,
                 port: int = 0):
        self.connections = 0
        self._frame = frame
        self._interval = 1.0 / fps
        self._stall_first_after = stall_first_after
        self._dead = threading.Event()
        self._clients: List[socket.socket] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                owner._serve(self)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _serve(self, handler) -> None:
        with self._lock:
            self.connections += 1
            number = self.connections
            self._clients.append(handler.connection)
        while handler.rfile.readline().strip():  # request line and headers
            pass
        stall_after = self._stall_first_after if number == 1 else None
        try:
            handler.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
            step = 0
            while not self._dead.is_set():
                if stall_after is not None and step >= stall_after:
                    time.sleep(0.02)
                    continue
                ok, jpeg = cv2.imencode(".jpg", self._frame(step))
                data = jpeg.tobytes()
                handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                                    + data + b"\r\n")
                handler.wfile.flush()
                step += 1
                time.sleep(self._interval)
        except OSError:
            pass  # the client went away

    def kill(self) -> None:
        self._dead.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for client in self._clients:
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._dead.is_set():
            self.kill()


def read_json_lines(path: Path) -> List[dict]:
    """Every line must be complete JSON (the app flushes whole lines only)."""
    text = path.read_text() if path.exists() else ""
    assert text == "" or text.endswith("\n"), "last JSON line is incomplete"
    return [json.loads(line) for line in text.splitlines()]


def wait_for_lines(path: Path, count: int, timeout: float, process: Optional[subprocess.Popen] = None) -> int:
    """Waits until `path` holds `count` lines (or the process ended); returns how many it holds."""
    deadline = time.monotonic() + timeout
    lines = 0
    while time.monotonic() < deadline:
        lines = path.read_text().count("\n") if path.exists() else 0
        if lines >= count or (process is not None and process.poll() is not None):
            break
        time.sleep(0.05)
    return lines


def _exporter_fingerprint(*inputs: Path) -> str:
    """Changes whenever the exporter's source (or one of `inputs`) changes, so cached exports are never stale."""
    h = hashlib.sha256()
    for extra in inputs:
        h.update(Path(extra).read_bytes())
    for src in sorted((REPO_ROOT / "python" / "jitvision" / "yolov5").glob("*.py")):
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def empty_detections_model(img: int = 320) -> Path:
    """A random-init YOLOv5n exported by our exporter, its Detect convs zeroed with bias -10 so that nothing ever
    passes the confidence threshold: the real pipeline and contract, no data needed, no detections. Cached under
    build/test-cache (an export takes 20-30 s here) keyed by the exporter's source."""
    cache = REPO_ROOT / "build" / "test-cache" / f"empty-yolov5n-{_exporter_fingerprint()}"
    path = cache / f"yolov5n-empty-{img}.torchscript"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    script = (
        "import sys, torch\n"
        "from jitvision.yolov5.model import Yolov5, yolov5_architecture\n"
        "from jitvision.yolov5.export import export_torchscript\n"
        "torch.manual_seed(0)\n"
        "model = Yolov5(yolov5_architecture('n', nc=80))\n"
        "for conv in model.detect.m:\n"
        "    torch.nn.init.zeros_(conv.weight)\n"
        "    torch.nn.init.constant_(conv.bias, -10.0)\n"
        f"export_torchscript(model.eval(), sys.argv[1], img_size={img})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(partial)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    partial.rename(path)
    return path


@contextmanager
def start_xvfb(*tools: str) -> Iterator[str]:
    """A private Xvfb display (":N") for one test; skips the test without Xvfb or one of `tools` (make setup installs
    them all)."""
    import pytest

    missing = [t for t in ("Xvfb", *tools) if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} needed (make setup installs them)")
    number = next(n for n in range(99, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)
