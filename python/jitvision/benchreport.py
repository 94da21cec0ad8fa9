"""``make bench``: both bench commands side by side, written up as docs/BENCHMARKS.md and docs/benchmarks.png.

Steps: a 1280x720 test video (panning over zidane.jpg when $JITVISION_DATA_DIR has it, else a synthetic scene);
the detector (yolov5n imported from $JITVISION_DATA_DIR/weights/yolov5n.pt, else the bundled digit detector);
then R rounds, each running every configuration on the C++ and the Python side back to back (the order flips
every round), 4 concurrent copies of the video batched across streams and with --batch 1 (`jitvision bench
--streams`), and the two detectors end to end as fresh processes; then the first-call study. Every figure in the
report is the median over the rounds; every ratio is taken within a round first, then its median is reported.

    python -m jitvision.benchreport [--rounds 3] [--threads N] [--out docs/BENCHMARKS.md]
"""
import argparse
import datetime
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from jitvision.errors import JitvisionError, ModelError, UsageError

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "bench"
CPP = REPO / "build" / "jitvision"
PY = [sys.executable, "-m", "jitvision"]
FORWARD_VARIANTS = ("eager", "traced", "traced+freeze", "traced+freeze+ofi", "scripted", "scripted+freeze",
                    "scripted+freeze+ofi")
STUDY = (("profiling", "eager"), ("profiling", "traced"), ("legacy", "traced"), ("unoptimized", "traced"),
         ("profiling", "traced+freeze+ofi"), ("legacy", "traced+freeze+ofi"))
STUDY_WARMUP = 10
CPP_EXECUTORS = ("profiling", "legacy", "unoptimized")
MAX_FOREIGN, ATTEMPTS = 0.1, 4  # a step is measured again while other processes took more than 0.1 cores
QUIET_WAIT_S = 900  # before each step, wait at most this long for other processes to quieten
STREAMS = 4  # `jitvision bench --streams`: concurrent copies of the video, batched up to this many frames


def shell(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(c)).replace(str(REPO) + "/", "") for c in cmd)


def make_video(path: Path, frames: int = 120, size=(1280, 720)) -> str:
    """Frames panning over zidane.jpg (scaled 1.25x) or over a synthetic scene; returns what it shows."""
    w, h = size
    data = os.environ.get("JITVISION_DATA_DIR")
    photo = cv2.imread(os.path.join(data, "images", "zidane.jpg")) if data else None
    if photo is not None:
        scene, what = cv2.resize(photo, (w * 5 // 4, h * 5 // 4), interpolation=cv2.INTER_LINEAR), "zidane.jpg"
    else:
        from jitvision.data.scenes import background

        scene = background(np.random.default_rng(0), h * 5 // 4, w * 5 // 4).astype(np.uint8)
        what = "a synthetic scene (no zidane.jpg)"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    span_x, span_y = scene.shape[1] - w, scene.shape[0] - h
    for i in range(frames):
        t = i / max(frames - 1, 1)
        x, y = round(span_x * t), round(span_y * (0.5 - 0.5 * np.cos(2 * np.pi * t)))
        writer.write(np.ascontiguousarray(scene[y:y + h, x:x + w]))
    writer.release()
    return f"{frames} frames {w}x{h} at 30 fps panning over {what}"


def detector_model(threads: int) -> Dict:
    """The model the detector rows use: yolov5n imported from the data dir (cached), else the bundled one."""
    data = os.environ.get("JITVISION_DATA_DIR")
    weights = Path(data) / "weights" / "yolov5n.pt" if data else None
    if weights and weights.is_file():
        from jitvision.model_file import load_model
        from jitvision.yolov5.checkpoint import sha256_of

        out = WORK / "yolov5n.torchscript"
        fresh = False
        if out.is_file():
            meta = load_model(str(out)).metadata or {}
            fresh = meta.get("source", {}).get("sha256") == sha256_of(str(weights))
        cmd = PY + ["yolov5", "import", str(weights), "--out", str(out)]
        if not fresh:
            subprocess.run(cmd, check=True, env=bench_env(threads))
        return {"path": str(out), "weights": str(weights), "what": "yolov5n (official weights, imported)",
                "made_by": shell(cmd).replace(str(weights), "$JITVISION_DATA_DIR/weights/yolov5n.pt")}
    bundled = REPO / "models" / "digits_yolov5n.torchscript"
    if not bundled.is_file():
        raise ModelError("benchreport: no detector: set JITVISION_DATA_DIR (weights/yolov5n.pt) or add "
                         "models/digits_yolov5n.torchscript")
    return {"path": str(bundled), "weights": None, "what": "the bundled digit detector (no yolov5n.pt)",
            "made_by": "bundled"}


def bench_env(threads: int, **extra: str) -> Dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), **extra}


QUICK = False  # --quick: every step runs, with 1 warm-up, 2 timed calls and 8 video frames (a smoke run)


def quick(cmd: Sequence[str]) -> List[str]:
    cmd = [str(c) for c in cmd]
    if QUICK:
        for flag, value in (("--iters", "2"), ("--warmup", "1")):
            if flag in cmd:
                cmd[cmd.index(flag) + 1] = value
    return cmd


def run_json(cmd: Sequence[str], threads: int, **env: str) -> Dict:
    cmd = quick(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=bench_env(threads, **env))
    if proc.returncode != 0:
        raise JitvisionError(f"benchreport: {shell(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def end_to_end(cmd: Sequence[str], threads: int) -> Dict:
    """A detector as a fresh process: wall time, time to its first JSON line, frames, CPU seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=bench_env(threads))
    first, lines = None, 0
    for _ in proc.stdout:
        first = first or time.perf_counter() - start
        lines += 1
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise JitvisionError(f"benchreport: {shell(cmd)} failed:\n{stderr[-3000:]}")
    return {"wall_s": wall, "first_result_s": first, "frames": lines, "cpu_s": usage.ru_utime + usage.ru_stime}


def _cpu_seconds() -> Tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its waited-for descendants)."""
    with open("/proc/stat") as stat:
        jiffies = [int(v) for v in stat.readline().split()[1:9]]
    busy = sum(jiffies) - jiffies[3] - jiffies[4]  # all but idle and iowait
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy / os.sysconf("SC_CLK_TCK"), me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def wait_quiet(log) -> None:
    """Waits (up to QUIET_WAIT_S) until other processes take at most MAX_FOREIGN cores over 2 s."""
    if QUICK:
        return
    deadline, said = time.monotonic() + QUIET_WAIT_S, False
    while time.monotonic() < deadline:
        busy0, own0 = _cpu_seconds()
        time.sleep(2)
        busy1, own1 = _cpu_seconds()
        foreign = ((busy1 - busy0) - (own1 - own0)) / 2
        if foreign <= MAX_FOREIGN:
            return
        if not said:
            log(f"other processes take {foreign:.2f} cores: waiting for a quiet machine")
            said = True


def undisturbed(step: Callable[[], Dict], what: str, log) -> Dict:
    """step() measured again (up to ATTEMPTS times) while other processes took more than MAX_FOREIGN cores
    meanwhile; the result carries "foreign_cores", what the others took during the attempt kept."""
    for attempt in range(ATTEMPTS):
        wait_quiet(log)
        load = os.getloadavg()[0]
        busy0, own0 = _cpu_seconds()
        start = time.perf_counter()
        result = step()
        busy1, own1 = _cpu_seconds()
        foreign = max(0.0, (busy1 - busy0) - (own1 - own0)) / (time.perf_counter() - start)
        if foreign <= MAX_FOREIGN or QUICK:
            break
        log(f"{what}: other processes took {foreign:.2f} cores meanwhile"
            + ("; measuring again" if attempt + 1 < ATTEMPTS else "; keeping it, flagged"))
    result["foreign_cores"], result["load_at_start"] = foreign, load
    return result


def configurations(mnist: str, det: Dict, video: str) -> List[Dict]:
    d = det["path"]
    return [
        {"key": "mnist-b1", "title": "MNIST digit classifier, batch 1 (1x1x28x28)", "model": mnist,
         "args": ["--shape", "1x1x28x28", "--warmup", "20", "--iters", "300"]},
        {"key": "mnist-b256", "title": "MNIST digit classifier, batch 256 (256x1x28x28)", "model": mnist,
         "args": ["--shape", "256x1x28x28", "--warmup", "5", "--iters", "30"]},
        {"key": "det-640", "title": f"{det['what']}, 1x3x640x640", "model": d,
         "args": ["--shape", "1x3x640x640", "--warmup", "5", "--iters", "30"]},
        {"key": "det-384", "title": f"{det['what']}, 1x3x384x640 (rect letterbox of the 1280x720 video) and the "
                                    "whole video", "model": d,
         "args": ["--img", "640", "--video", video, "--warmup", "5", "--iters", "30"]},
    ]


def one_round(index: int, configs: List[Dict], det: Dict, video: str, threads: int, log) -> Dict:
    weights = ["--weights", det["weights"]] if det["weights"] else []
    result = {"configs": {}, "e2e": {}}
    for cfg in configs:
        cpp_cmd = [CPP, "bench", "--model", cfg["model"], "--threads", threads, *cfg["args"], "--json"]
        py_cmd = PY + ["bench", "--model", cfg["model"], "--threads", str(threads), *cfg["args"], "--isolate",
                       "--json"] + (weights if cfg["model"] == det["path"] else [])
        cfg["commands"] = {"cpp": shell(cpp_cmd), "python": shell(py_cmd)}
        pair = {}
        for side, cmd in (("cpp", cpp_cmd), ("python", py_cmd))[::1 if index % 2 == 0 else -1]:
            log(f"round {index + 1}: {cfg['key']} {side}")
            pair[side] = undisturbed(lambda: run_json(cmd, threads), f"{cfg['key']} {side}", log)
        result["configs"][cfg["key"]] = pair
    video_cfg = next(cfg for cfg in configs if cfg["key"] == "det-384")
    shape = "x".join(map(str, result["configs"]["det-384"]["cpp"]["shape"]))
    peers_cmd = [sys.executable, "-m", "jitvision.peers", "--model", det["path"], "--shape", shape, "--threads",
                 str(threads), "--warmup", "5", "--iters", "30", "--json"]
    log(f"round {index + 1}: peers (ONNX Runtime, OpenVINO)")
    result["peers"] = undisturbed(lambda: run_json(peers_cmd, threads), "peers", log)
    result["peers_command"] = shell(peers_cmd)
    one_worker = [CPP, "bench", "--model", det["path"], "--threads", threads, *video_cfg["args"], "--workers", "1",
                  "--json"]
    log(f"round {index + 1}: C++ pipeline with one inference worker")
    result["one_worker"] = undisturbed(lambda: run_json(one_worker, threads), "one worker", log)
    result["one_worker_command"] = shell(one_worker)
    streams = [CPP, "bench", "--model", det["path"], "--threads", threads, "--img", "640", "--video", video,
               "--streams", STREAMS, "--batch", STREAMS, "--warmup", "1", "--iters", "3", "--json"]
    log(f"round {index + 1}: {STREAMS} concurrent streams, --batch {STREAMS} and --batch 1")
    result["streams"] = undisturbed(lambda: run_json(streams, threads), "streams", log)
    result["streams_command"] = shell(streams)
    out_video = WORK / "detect_out.mp4"
    e2e_cmds = {
        "cpp": [CPP, "detect", "--model", det["path"], "--source", video, "--img", "640", "--threads", threads,
                "--json", "-", "--save-video", out_video, "--overwrite", "--quiet"],
        "python": PY + ["yolov5", "detect", "--model", det["path"], "--source", video, "--img", "640", "--json"],
    }
    for side in (("cpp", "python") if index % 2 == 0 else ("python", "cpp")):
        log(f"round {index + 1}: end to end {side}")
        result["e2e"][side] = undisturbed(lambda: end_to_end(e2e_cmds[side], threads), f"end to end {side}", log)
    result["e2e_commands"] = {k: shell(v) for k, v in e2e_cmds.items()}
    return result


def first_call_study(det: Dict, video_shape: str, threads: int, log) -> Dict:
    rows = {}
    weights = ["--weights", det["weights"]] if det["weights"] else []
    for executor, variant in STUDY:
        cmd = PY + ["bench", "--model", det["path"], "--shape", video_shape, "--threads", str(threads),
                    "--warmup", str(STUDY_WARMUP), "--iters", "30", "--variants", variant,
                    "--jit-executor", executor, "--isolate", "--json"] + weights
        log(f"first-call study: {executor} {variant}")
        v = undisturbed(lambda: run_json(cmd, threads), f"study {executor} {variant}", log)
        v = {**v["variants"][variant], "foreign_cores": v["foreign_cores"], "load_at_start": v["load_at_start"]}
        rows[f"{executor}|{variant}"] = {"load_ms": v["load_ms"], "calls_ms": [v["first_call_ms"]] + v["warmup_ms"],
                                         "median_ms": v["forward"]["median_ms"], "skipped": v["skipped"],
                                         "command": shell(cmd), "foreign_cores": v["foreign_cores"],
                                         "load_at_start": v["load_at_start"]}
    for executor in CPP_EXECUTORS:
        cmd = [CPP, "bench", "--model", det["path"], "--shape", video_shape, "--threads", threads, "--warmup",
               STUDY_WARMUP, "--iters", "30", "--jit-executor", executor, "--json"]
        log(f"first-call study: C++ {executor}")
        cpp = undisturbed(lambda: run_json(cmd, threads), f"study C++ {executor}", log)
        rows[f"cpp|{executor}"] = {"load_ms": cpp["load_ms"], "calls_ms": [cpp["first_call_ms"]] + cpp["warmup_ms"],
                                   "median_ms": cpp["forward"]["median_ms"], "skipped": None, "command": shell(cmd),
                                   "foreign_cores": cpp["foreign_cores"], "load_at_start": cpp["load_at_start"]}
    return rows


def contention_study(det: Dict, video_shape: str, cores: int, log) -> List[Dict]:
    """C++ forward-only with all cores, with OMP_WAIT_POLICY=PASSIVE, and with one core fewer, each on its own and
    beside one busy-looping process (what a shared machine does to OpenMP's spinning barriers)."""
    rows = []
    for threads, policy in ((cores, ""), (cores, "PASSIVE"), (max(cores - 1, 1), "")):
        for busy in (False, True):
            cmd = [CPP, "bench", "--model", det["path"], "--shape", video_shape, "--threads", threads, "--warmup", "3",
                   "--iters", "15", "--json"]
            log(f"contention study: {threads} threads, wait policy {policy or 'default'}, busy neighbour {busy}")

            def step(busy=busy, policy=policy, cmd=cmd, threads=threads):
                neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
                try:
                    return run_json(cmd, threads, **({"OMP_WAIT_POLICY": policy} if policy else {}))
                finally:
                    if neighbour:
                        neighbour.kill()
                        neighbour.wait()

            out = undisturbed(step, "contention study", log)
            rows.append({"threads": threads, "policy": policy or "default", "busy": busy,
                         "foreign_cores": out["foreign_cores"], "load_at_start": out["load_at_start"],
                         "median_ms": out["forward"]["median_ms"], "first_call_ms": out["first_call_ms"],
                         "command": ("OMP_WAIT_POLICY=PASSIVE " if policy else "") + shell(cmd)})
    return rows


def machine() -> Dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    version = subprocess.run([CPP, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    import torch

    return {"cpu": model, "cores": os.cpu_count(), "load_start": os.getloadavg(), "commit": commit,
            "cpp_version": "; ".join(version), "python": sys.version.split()[0], "torch": torch.__version__,
            "opencv_python": cv2.__version__, "numpy": np.__version__,
            "date": datetime.datetime.now().isoformat(timespec="minutes")}


# ---- the report ----

def med(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def f(v: Optional[float], digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _per_round(raw: Dict, pick) -> List[Optional[float]]:
    values = []
    for r in raw["rounds"]:
        try:
            values.append(pick(r))
        except (KeyError, TypeError, ZeroDivisionError):
            values.append(None)
    return values


def per_step(raw: Dict, key: str) -> List[float]:
    """``key`` ("foreign_cores" or "load_at_start") of every step that was kept."""
    values = [side[key] for r in raw["rounds"] for pair in r["configs"].values() for side in pair.values()]
    values += [side[key] for r in raw["rounds"] for side in r["e2e"].values()]
    values += [r["one_worker"][key] for r in raw["rounds"]]
    values += [r["peers"][key] for r in raw["rounds"] if "peers" in r]
    values += [r["streams"][key] for r in raw["rounds"] if "streams" in r]
    values += [row[key] for study in raw["study"] for row in study.values()]
    values += [row[key] for rows in raw["contention"] for row in rows]
    return values


def summarise_forward(raw: Dict) -> Dict:
    """Per configuration: the C++ row and one row per Python variant (medians over rounds)."""
    forward = {}
    for cfg in raw["configs"]:
        key = cfg["key"]
        rows = {"C++ (LibTorch, file)": {
            "load_ms": med(_per_round(raw, lambda r: r["configs"][key]["cpp"]["load_ms"])),
            "first_ms": med(_per_round(raw, lambda r: r["configs"][key]["cpp"]["first_call_ms"])),
            "median_ms": med(_per_round(raw, lambda r: r["configs"][key]["cpp"]["forward"]["median_ms"])),
            "p90_ms": med(_per_round(raw, lambda r: r["configs"][key]["cpp"]["forward"]["p90_ms"])),
            "min_ms": med(_per_round(raw, lambda r: r["configs"][key]["cpp"]["forward"]["min_ms"])),
            "vs_cpp": 1.0, "note": ""}}
        for name in FORWARD_VARIANTS:
            def v(r, n=name):
                return r["configs"][key]["python"]["variants"][n]
            skipped = v(raw["rounds"][0])["skipped"]
            rows[f"Python {name}"] = {
                "load_ms": med(_per_round(raw, lambda r: v(r)["load_ms"])),
                "first_ms": med(_per_round(raw, lambda r: v(r)["first_call_ms"])),
                "median_ms": med(_per_round(raw, lambda r: v(r)["forward"]["median_ms"])),
                "p90_ms": med(_per_round(raw, lambda r: v(r)["forward"]["p90_ms"])),
                "min_ms": med(_per_round(raw, lambda r: v(r)["forward"]["min_ms"])),
                "vs_cpp": med(_per_round(raw, lambda r, k=key: v(r)["forward"]["median_ms"]
                                         / r["configs"][k]["cpp"]["forward"]["median_ms"])),
                "note": skipped or v(raw["rounds"][0])["source"]}
        forward[key] = rows
    return forward


VIDEO_FIGURES = ("fps", "per_frame_ms", "per_frame_over_forward", "first_result_s", "wall_s")


def _det(r: Dict) -> Dict:
    return r["configs"]["det-384"]


def _stage_medians(raw: Dict, video: Callable[[Dict], Dict]) -> Dict:
    """Median and p90 over rounds of each stage that ran in `video(round)`."""
    return {st: {q: med(_per_round(raw, lambda r, st=st, q=q: video(r)["stages"][st][q]))
                 for q in ("median_ms", "p90_ms")}
            for st, stats in video(raw["rounds"][0])["stages"].items() if stats["n"]}


def summarise_video(raw: Dict) -> Dict:
    """The whole-video pipeline figures: C++ (default workers and one worker) and Python."""
    cpp = lambda r: _det(r)["cpp"]["video"]  # noqa: E731
    one = lambda r: r["one_worker"]["video"]  # noqa: E731
    py = lambda r: _det(r)["python"]["video"]  # noqa: E731
    s = {"cpp_video": {k: med(_per_round(raw, lambda r, k=k: cpp(r)[k])) for k in VIDEO_FIGURES},
         "cpp_video_w1": {k: med(_per_round(raw, lambda r, k=k: one(r)[k])) for k in VIDEO_FIGURES}}
    first_video = cpp(raw["rounds"][0])
    s["cpp_video"]["workers"] = first_video["workers"]
    s["cpp_video"]["threads_per_worker"] = first_video["threads_per_worker"]
    s["cpp_stages_w1"] = {st: q["median_ms"] for st, q in _stage_medians(raw, one).items()}
    s["cpp_stages"] = _stage_medians(raw, cpp)
    s["py_video"] = {k: med(_per_round(raw, lambda r, k=k: py(r)[k]))
                     for k in ("fps", "per_frame_ms", "first_result_s", "wall_s", "load_ms")}
    s["py_stages"] = {st: {q: med(_per_round(raw, lambda r, st=st, q=q: py(r)["stages"][st][q]))
                           for q in ("median_ms", "p90_ms")} for st in ("capture", "detect", "output")}
    s["cpp_peak_rss_mb"] = med(_per_round(raw, lambda r: _det(r)["cpp"]["peak_rss_mb"]))
    return s


def summarise_e2e(raw: Dict) -> Dict:
    """Fresh-process runs of both sides: medians, the wall-time ratio per round, the slowest first result."""
    e2e = {side: {k: med(_per_round(raw, lambda r, side=side, k=k: r["e2e"][side][k]))
                  for k in ("wall_s", "first_result_s", "frames", "cpu_s")} for side in ("cpp", "python")}
    e2e["ratio"] = med(_per_round(raw, lambda r: r["e2e"]["cpp"]["wall_s"] / r["e2e"]["python"]["wall_s"]))
    e2e["first_max"] = max(r["e2e"]["cpp"]["first_result_s"] for r in raw["rounds"])
    return e2e


def summarise_study(raw: Dict) -> Dict:
    """The first-call study: medians over its repetitions, call by call."""
    study = {}
    for name in raw["study"][0]:
        runs = [st[name] for st in raw["study"]]
        calls = len(runs[0]["calls_ms"])
        study[name] = {"load_ms": med(x["load_ms"] for x in runs), "median_ms": med(x["median_ms"] for x in runs),
                       "calls_ms": [med(x["calls_ms"][i] for x in runs) for i in range(calls)],
                       "skipped": runs[0]["skipped"], "command": runs[0]["command"]}
    return study


def summarise(raw: Dict) -> Dict:
    """Medians over rounds of every figure the report and the chart show; ratios per round first."""
    s = {"forward": summarise_forward(raw), "cores": raw["machine"]["cores"], **summarise_video(raw)}
    s["e2e"] = summarise_e2e(raw)
    s["fwd_ratio"] = {key: med(_per_round(raw, lambda r, key=key: r["configs"][key]["cpp"]["forward"]["median_ms"]
                                          / r["configs"][key]["python"]["variants"]["traced"]["forward"]["median_ms"]))
                      for key in s["forward"]}
    s["study"] = summarise_study(raw)
    s["contention"] = [{**row, "median_ms": med(rnd[i]["median_ms"] for rnd in raw["contention"])}
                       for i, row in enumerate(raw["contention"][0])]
    s["streams"] = summarise_streams(raw)
    s["targets"] = {"per_frame": s["cpp_video"]["per_frame_over_forward"], "wall": s["e2e"]["ratio"],
                    "startup": s["e2e"]["cpp"]["first_result_s"], "forward": s["fwd_ratio"]["det-384"]}
    return s


def summarise_streams(raw: Dict) -> Optional[Dict]:
    """Medians over rounds of `jitvision bench --streams` (None when no round ran it); the speed-up is per round."""
    rounds = [r["streams"]["streams"] for r in raw["rounds"] if "streams" in r]
    if not rounds:
        return None

    def run(kind: str) -> Dict:
        first = rounds[0][kind]
        out = {"fps": med(x[kind]["fps"] for x in rounds), "batch": first["batch"], "workers": first["workers"],
               "threads_per_worker": first["threads_per_worker"]}
        out.update({k: med(x[kind]["per_stream_fps"][k] for x in rounds) for k in ("min", "mean", "max", "spread")})
        out.update({k: med(x[kind]["stages"][k]["median_ms"] for x in rounds) for k in ("preprocess", "inference")})
        return out

    return {"streams": rounds[0]["streams"], "batched": run("batched"), "unbatched": run("unbatched"),
            "speedup": med(x["speedup"] for x in rounds), "command": raw["rounds"][0]["streams_command"]}


def verdict_at_least(value: Optional[float], floor: float, unit: str = "") -> str:
    if value is None:
        return "not measured"
    if value >= floor:
        return f"**met** ({f(value, 2)}{unit} >= {floor:g}{unit})"
    return f"**missed** by {100 * (1 - value / floor):.0f}% ({f(value, 2)}{unit} < {floor:g}{unit})"


def verdict(value: Optional[float], limit: float, unit: str = "") -> str:
    if value is None:
        return "not measured"
    if value <= limit:
        return f"**met** ({f(value, 2)}{unit} <= {limit:g}{unit})"
    return f"**missed** by {100 * (value / limit - 1):.0f}% ({f(value, 2)}{unit} > {limit:g}{unit})"


def calls_to_steady(calls: List[Optional[float]], steady: Optional[float]) -> str:
    """1-based index of the first call from which every later call is within 10% of the steady median."""
    if steady is None or not calls:
        return "-"
    for i in range(len(calls)):
        if all(c is not None and c <= 1.1 * steady for c in calls[i:]):
            return str(i + 1)
    return f"> {len(calls)}"


def header_lines(raw: Dict, chart_name: str) -> List[str]:
    """The title, how the figures were taken, the chart, and a warning when steps were disturbed."""
    m = raw["machine"]
    rounds = len(raw["rounds"])
    foreign = per_step(raw, "foreign_cores")
    out = ["# Benchmarks", "",
           f"Generated by `make bench` ([python/jitvision/benchreport.py](../python/jitvision/benchreport.py)) on "
           f"{m['date']} at commit `{m['commit']}`. Every figure is the median of {rounds} rounds; every ratio is "
           "taken within one round (both sides measured back to back, their order flipped each round) and then its "
           "median is reported. The machine is shared: before each step the script waits until other processes "
           f"take at most {MAX_FOREIGN} cores, and it measures a step again when they took more while it ran "
           "(from /proc/stat minus its own processes' CPU time). No GPU was available, so there are no CUDA/FP16 "
           "figures.", "",
           f"![benchmarks at a glance]({chart_name})", ""]
    disturbed = sum(v > MAX_FOREIGN for v in foreign)
    if disturbed:
        out += [f"> **{disturbed} of {len(foreign)} steps were disturbed**: other processes kept taking more than "
                f"{MAX_FOREIGN} cores (up to {max(foreign):.2f}) through {ATTEMPTS} attempts; their figures are "
                "indicative only.", ""]
    return out


def machine_lines(raw: Dict) -> List[str]:
    """The machine, its load while the report was measured, the versions, the video and the detector."""
    m, det = raw["machine"], raw["detector"]
    ls, le = m["load_start"], m.get("load_end", m["load_start"])
    foreign, loads = per_step(raw, "foreign_cores"), per_step(raw, "load_at_start")
    disturbed = sum(v > MAX_FOREIGN for v in foreign)
    out = ["## Machine", ""]
    out += table(["what", "value"], [
        ["CPU", f"{m['cpu']}, {m['cores']} cores (lscpu / nproc)"],
        ["load average when `make bench` started (1/5/15 min)", " / ".join(f"{x:.2f}" for x in ls)],
        ["load average at the end", " / ".join(f"{x:.2f}" for x in le)],
        ["1-minute load average as each kept step started (it counts the previous steps' own threads)",
         f"median {f(med(loads), 2)}, max {f(max(loads), 2)}"],
        ["CPU taken by other processes during each kept step (cores; a step is repeated while it exceeds "
         f"{MAX_FOREIGN}, at most {ATTEMPTS} times)",
         f"median {f(med(foreign), 3)}, max {f(max(foreign), 3)}; {disturbed} of {len(foreign)} steps kept over "
         f"{MAX_FOREIGN}"],
        ["threads (both sides)", str(raw["threads"])],
        ["C++ app", m["cpp_version"]],
        ["Python side", f"Python {m['python']}, torch {m['torch']}, opencv-python {m['opencv_python']}, "
                        f"numpy {m['numpy']}"],
        ["video", f"`{Path(raw['video']['path']).relative_to(REPO)}`: {raw['video']['what']}"],
        ["detector", f"{det['what']}: `{det['made_by']}`"],
    ])
    return out


def target_lines(s: Dict) -> List[str]:
    """Issue [E]'s targets, each with its verdict, and why a missed one was missed."""
    t = s["targets"]
    out = ["", "## Targets (issue [E]: 2-core CPU, yolov5n, 1280x720 video, input 384x640)", ""]
    out += table(["target", "measured", "verdict"], [
        ["C++ steady-state time per frame <= 1.10 x C++ forward-only at the same size",
         f"{f(s['cpp_video']['per_frame_ms'])} ms per frame / "
         f"{f(s['forward']['det-384']['C++ (LibTorch, file)']['median_ms'])} "
         "ms forward (`jitvision bench --video`: `per_frame_over_forward`)", verdict(t["per_frame"], 1.10, " x")],
        ["C++ wall time for the whole video <= 0.67 x the Python reference detector's (fresh processes, same run)",
         f"{f(s['e2e']['cpp']['wall_s'], 2)} s vs {f(s['e2e']['python']['wall_s'], 2)} s",
         verdict(t["wall"], 0.67, " x")],
        ["start-up (process start) to first result <= 2 s",
         f"{f(t['startup'], 2)} s (worst round {f(s['e2e']['first_max'], 2)} s)", verdict(t["startup"], 2.0, " s")],
        ["C++ forward-only not slower than Python TorchScript forward by more than 5%",
         f"384x640: {f(t['forward'], 3)} x; 640x640: {f(s['fwd_ratio']['det-640'], 3)} x",
         verdict(max(v for v in (t["forward"], s["fwd_ratio"]["det-640"]) if v is not None), 1.05, " x")],
    ])
    out += ["", *why_lines(s), ""]
    return out


def forward_lines(raw: Dict, s: Dict) -> List[str]:
    """Forward-only latency, one table per configuration."""
    out = ["## Forward-only latency", "",
           "First call: the first forward after loading, in a fresh process on both sides (Python `--isolate`). "
           "Median/p90/min: over the timed calls after the warm-up calls. `x C++`: the variant's median over the C++ "
           "median, per round. Load: reading the file (and freezing/optimising, or importing the checkpoint for "
           "eager).", ""]
    for cfg in raw["configs"]:
        out += [f"### {cfg['title']}", ""]
        rows = []
        for name, r in s["forward"][cfg["key"]].items():
            if r["median_ms"] is None:
                rows.append([name, "-", "-", "-", "-", "-", "-", f"skipped: {r['note']}"])
                continue
            rows.append([name, f(r["load_ms"], 0), f(r["first_ms"]), f(r["median_ms"], 2), f(r["p90_ms"], 2),
                         f(r["min_ms"], 2), f(r["vs_cpp"], 2), r["note"]])
        out += table(["", "load ms", "first call ms", "median ms", "p90 ms", "min ms", "x C++", "how it was made"],
                     rows)
        out += ["", f"`{cfg['commands']['cpp']}`", "", f"`{cfg['commands']['python']}`", ""]
    return out


def video_lines(raw: Dict, s: Dict) -> List[str]:
    """The whole video in process: C++ pipeline (default workers and one worker) and Python."""
    cv, pv, w1 = s["cpp_video"], s["py_video"], s["cpp_video_w1"]
    plural = "s" if cv["threads_per_worker"] > 1 else ""
    workers = f"{cv['workers']} workers x {cv['threads_per_worker']} thread{plural}"
    out = ["## The whole video", "",
           "In-process figures of `jitvision bench --video` (C++: a capture thread decoding and letterboxing, "
           "inference workers, and an output thread drawing boxes and encoding an mp4) and of "
           "`python -m jitvision bench --video` (the reference detector's loop: decode, detect, JSON line; no "
           "drawing). Per frame and FPS are steady state (after the first result). The C++ first result here comes "
           "after the forward-only runs in the same process, so caches are warm: the start-up target is judged on "
           "the fresh-process run below.", "",
           f"The C++ default on the CPU is {workers} (`--workers 0`, auto): two frames in the model at once, each "
           f"with half the threads. The column `--workers 1` runs one frame at a time on all {raw['threads']} "
           "threads, "
           "which gives the lowest latency per frame but stalls whenever decoding or encoding takes a core from one "
           "of OpenMP's threads (see the shared-CPU study at the end).", ""]
    fwd_ms = s["forward"]["det-384"]["C++ (LibTorch, file)"]["median_ms"]
    out += table(["", f"C++ pipeline, {workers} (default)", "C++ pipeline, `--workers 1`", "Python reference"], [
        ["steady FPS", f(cv["fps"]), f(w1["fps"]), f(pv["fps"])],
        ["per frame ms", f(cv["per_frame_ms"], 2), f(w1["per_frame_ms"], 2), f(pv["per_frame_ms"], 2)],
        ["per frame / C++ forward-only", f(cv["per_frame_over_forward"], 3), f(w1["per_frame_over_forward"], 3),
         f(pv["per_frame_ms"] / fwd_ms, 3) if pv["per_frame_ms"] else "-"],
        ["first result s (in process)", f(cv["first_result_s"], 2), f(w1["first_result_s"], 2),
         f(pv["first_result_s"], 2)],
        ["wall s (model load to last frame)", f(cv["wall_s"], 2), f(w1["wall_s"], 2), f(pv["wall_s"], 2)],
    ])
    out += ["", "Per-stage median / p90 ms. C++: capture (decode) and preprocess (letterbox) run on the capture "
            "thread; inference (the forward, one frame per worker) and postprocess (NMS) on a worker; output (JSON, "
            "drawing, encoding) on the main thread. A worker's inference time is its latency per frame: with two "
            "workers each frame takes longer, but two are in flight.", ""]
    stages = [[f"C++ {k}", f(v["median_ms"], 2), f(v["p90_ms"], 2), f(s["cpp_stages_w1"].get(k), 2)]
              for k, v in s["cpp_stages"].items()]
    stages += [[f"Python {k}", f(v["median_ms"], 2), f(v["p90_ms"], 2), "-"] for k, v in s["py_stages"].items()]
    out += table(["stage", "median ms", "p90 ms", "median ms, `--workers 1`"], stages)
    out += ["", f"`{raw['rounds'][0]['one_worker_command']}`"]
    out += ["", f"C++ peak RSS (forward runs and pipeline): {f(s['cpp_peak_rss_mb'], 0)} MB.", ""]
    return out


def streams_lines(raw: Dict, s: Dict) -> List[str]:
    """Issue [F]'s many-cameras figures: N concurrent copies of the video, batched across streams and not."""
    st = s["streams"]
    if st is None:
        return []
    n, b, u = st["streams"], st["batched"], st["unbatched"]
    out = [f"## {n} streams at once: batching across streams", "",
           f"`jitvision bench --streams {n}`: {n} concurrent copies of the video through the whole detect pipeline in "
           f"one process (no outputs), once with batches of up to {b['batch']} frames of different streams and once "
           "with `--batch 1`, back to back. Total: steady frames per second of all streams together. Per stream: "
           "each stream's processed frames per second of its active time. Inference per frame: a batch's forward over "
           "its frames (per worker; workers run side by side); letterbox: on the capture threads.", ""]

    def row(name: str, r: Dict) -> List[str]:
        return [name, f(r["fps"]), f"{f(r['min'])} / {f(r['mean'])} / {f(r['max'])}", f"{100 * r['spread']:.0f}%",
                f"{r['workers']} x {r['threads_per_worker']}", f(r["inference"], 1), f(r["preprocess"], 1)]

    out += table(["", "total FPS", "per stream min / mean / max FPS", "largest deviation from the mean",
                  "workers x threads", "inference ms per frame", "letterbox ms per frame"],
                 [row(f"`--batch {b['batch']}`", b), row("`--batch 1`", u)])
    out += ["", "Targets (issue [F]: 2-core CPU, yolov5n at 384x640, 4 concurrent 720p sources):", ""]
    out += table(["target", "measured", "verdict"], [
        ["total throughput with batching >= 1.3 x `--batch 1` (same run)", f"{f(st['speedup'], 2)} x",
         verdict_at_least(st["speedup"], 1.3, " x")],
        ["each stream's processed rate within 20% of the mean (batched)", f"{100 * b['spread']:.0f}%",
         verdict(100 * b["spread"], 20, "%")]])
    return out + ["", f"Command: `{st['command']}`", ""]


def e2e_lines(raw: Dict, s: Dict) -> List[str]:
    """Both detectors as fresh processes on the video."""
    e = s["e2e"]
    out = ["## End to end, fresh processes", "",
           "Each detector run as its own process on the video, timed from the outside: wall time from process start "
           "to exit, first result = time to the first JSON line on stdout, CPU = user + system seconds. The C++ run "
           "does more work than the Python one (it also draws and encodes an annotated mp4).", ""]
    out += table(["", "wall s", "first result s", "frames", "CPU s", "frames / wall s"], [
        [side_name, f(e[k]["wall_s"], 2), f(e[k]["first_result_s"], 2), f(e[k]["frames"], 0), f(e[k]["cpu_s"], 1),
         f(e[k]["frames"] / e[k]["wall_s"]) if e[k]["wall_s"] else "-"]
        for k, side_name in (("cpp", "C++ `jitvision detect`"), ("python", "Python reference"))])
    out += ["", f"C++ / Python wall time: {f(e['ratio'], 3)} (median of per-round ratios).", "",
            f"`{raw['rounds'][0]['e2e_commands']['cpp']}`", "", f"`{raw['rounds'][0]['e2e_commands']['python']}`", ""]
    return out


def first_call_lines(raw: Dict, s: Dict) -> List[str]:
    """The first-call study (load and the first calls per executor) and what the app does."""
    det = raw["detector"]
    out = ["## First call (issue item 4)", "",
           f"{det['what']} at the video's input size, each option in a fresh process (Python `--isolate`; C++ "
           f"`jitvision bench --jit-executor`): load, then the first {STUDY_WARMUP + 1} calls one by one, then the "
           "steady median of 30. The executor options: `profiling` is torch's default "
           "(`torch._C._jit_set_profiling_executor(True)`, C++ `torch::jit::getExecutorMode() = true`), `legacy` "
           "turns the profiling executor off, `unoptimized` keeps it but turns graph optimisation off "
           "(`torch._C._set_graph_executor_optimize(False)`, C++ `torch::jit::setGraphExecutorOptimize(false)`). "
           "`+freeze+ofi` is `torch.jit.freeze` + `torch.jit.optimize_for_inference` at load.", ""]
    rows = []
    for name, r in s["study"].items():
        side, option = name.split("|")
        label = f"C++ `jitvision bench`, {option}" if side == "cpp" else f"Python {option}, {side}"
        if r["skipped"]:
            rows.append([label] + ["-"] * 8 + [f"skipped: {r['skipped']}"])
            continue
        calls = r["calls_ms"] + [None] * 6
        rows.append([label, f(r["load_ms"], 0), *[f(c) for c in calls[:6]], f(r["median_ms"], 2),
                     calls_to_steady(r["calls_ms"], r["median_ms"])])
    out += table(["option", "load ms", "call 1", "call 2", "call 3", "call 4", "call 5", "call 6", "steady ms",
                  "within 10% of steady from call"], rows)
    out += ["", *recommendation_lines(s), ""]
    return out


def report_lines(raw: Dict, s: Dict, chart_name: str) -> List[str]:
    return (header_lines(raw, chart_name) + machine_lines(raw) + target_lines(s) + peer_lines(raw)
            + forward_lines(raw, s) + video_lines(raw, s) + streams_lines(raw, s) + e2e_lines(raw, s)
            + first_call_lines(raw, s) + contention_lines(s)
            + ["Study commands (one per row):", ""] + [f"- `{r['command']}`" for r in s["study"].values()] + [""])


def peer_lines(raw: Dict) -> List[str]:
    """ONNX Runtime and OpenVINO beside the C++ forward at the video's input (det-384), each ratio within a round."""
    rounds = [r for r in raw["rounds"] if "peers" in r]
    if not rounds:
        return []
    out = ["## Peers: ONNX Runtime and OpenVINO", ""]
    skipped = rounds[0]["peers"]["skipped"]
    if skipped:
        return out + [f"Not measured: {skipped}.", ""]
    first = rounds[0]["peers"]
    rows = [["jitvision (C++, TorchScript, the app's form)",
             f(med(r["configs"]["det-384"]["cpp"]["forward"]["median_ms"] for r in rounds), 2),
             f(med(r["configs"]["det-384"]["cpp"]["forward"]["min_ms"] for r in rounds), 2), "1.00", "0 (reference)"]]
    for name, entry in first["peers"].items():
        if entry["skipped"]:
            rows.append([f"{name} {entry['version'].split('-')[0]}", "-", "-", "-", f"skipped: {entry['skipped']}"])
            continue
        entries = [r["peers"]["peers"][name] for r in rounds]
        ratios = [e["forward"]["median_ms"] / r["configs"]["det-384"]["cpp"]["forward"]["median_ms"]
                  for e, r in zip(entries, rounds) if not e["skipped"]]
        rows.append([f"{name} {entry['version'].split('-')[0]}", f(med(e["forward"]["median_ms"] for e in entries), 2),
                     f(med(e["forward"]["min_ms"] for e in entries), 2), f(med(ratios), 2),
                     f"{max(e['max_abs_diff'] for e in entries if not e['skipped']):.2g}"])
    shape = "x".join(map(str, first["shape"]))
    out += [f"Forward only, input {shape}, {first['threads']} threads, in the same round as the C++ rows above; "
            f"the peers run the TorchScript file exported to ONNX (opset {first['onnx_opset']}). `x jitvision`: the "
            "peer's median over the C++ median, within a round, then the median over rounds. Max diff: largest "
            f"difference of the output rows from {first['reference']} (pixels for boxes).", ""]
    out += table(["runtime", "median ms", "min ms", "x jitvision", "max diff"], rows)
    return out + ["", f"Command: `{rounds[0]['peers_command']}`", ""]


def why_lines(s: Dict) -> List[str]:
    """For each missed target: by how much, and the figures that show why."""
    t, cv, st = s["targets"], s["cpp_video"], s["cpp_stages"]
    fwd = s["forward"]["det-384"]["C++ (LibTorch, file)"]["median_ms"]
    lines = []
    if t["per_frame"] is not None and t["per_frame"] > 1.10:
        lines.append(
            f"- **Per frame** ({f(cv['per_frame_ms'], 1)} ms vs {f(fwd, 1)} ms forward-only, "
            f"{f(100 * (t['per_frame'] / 1.10 - 1), 0)}% over the target): {cv['workers']} worker(s) each spend "
            f"inference {f(st['inference']['median_ms'], 1)} + postprocess {f(st['postprocess']['median_ms'], 1)} ms "
            f"per frame, while the capture thread (decode {f(st['capture']['median_ms'], 1)}, letterbox "
            f"{f(st['preprocess']['median_ms'], 1)} ms per frame) and the output thread (drawing and mp4 encoding, "
            f"{f(st['output']['median_ms'], 1)} ms per frame) share the same {s['cores']} cores.")
    if t["wall"] is not None and t["wall"] > 0.67:
        e = s["e2e"]
        lines.append(
            f"- **Whole video** (C++ {f(e['cpp']['wall_s'], 2)} s = {f(t['wall'], 2)} x Python "
            f"{f(e['python']['wall_s'], 2)} s, target 0.67 x): the C++ run reaches its first result after "
            f"{f(e['cpp']['first_result_s'], 2)} s (Python {f(e['python']['first_result_s'], 2)} s) and then runs at "
            f"{f(cv['per_frame_ms'], 1)} ms per frame against the reference's "
            f"{f(s['py_video']['per_frame_ms'], 1)} ms: "
            "both spend most of the frame in the same TorchScript forward, so the gap left for C++ to win is the "
            "Python start-up and per-frame overhead, not the model.")
    if t["startup"] is not None and t["startup"] > 2.0:
        lines.append(f"- **Start-up** ({f(t['startup'], 2)} s): process start, LibTorch loading, model loading, "
                     "two warm-up forwards and the first frame; see the first-call study below.")
    worst = max(v for v in s["fwd_ratio"].values() if v is not None)
    if worst > 1.05:
        lines.append(f"- **Forward** (worst C++/Python ratio {f(worst, 3)}): both sides run the same file on the same "
                     "LibTorch build; see the per-size tables below.")
    return lines or ["All four targets are met in this run."]


def contention_lines(s: Dict) -> List[str]:
    rows, by_key = [], {(r["threads"], r["policy"], r["busy"]): r for r in s["contention"]}
    for (threads, policy, busy), r in by_key.items():
        if busy:
            continue
        crowded = by_key[(threads, policy, True)]
        rows.append([str(threads), policy, f(r["median_ms"], 1), f(crowded["median_ms"], 1),
                     f(crowded["median_ms"] / r["median_ms"], 1) if r["median_ms"] else "-"])
    return ["## A shared CPU: OpenMP threads beside a busy process", "",
            "C++ `jitvision bench` forward-only at the video's input size, alone and beside one process that "
            "busy-loops on one core (what another engineer's build does to this machine). LibTorch's OpenMP threads "
            "spin at every barrier; when one of them loses its core, every parallel region waits for it.", ""] + \
        table(["threads", "OMP_WAIT_POLICY", "alone ms", "beside a busy process ms", "slow-down x"], rows) + \
        ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in s["contention"] if not r["busy"]), ""]


def recommendation_lines(s: Dict) -> List[str]:
    """What each C++ executor costs before its steady state, and the one the app uses."""
    study = s["study"]
    lines = ["What the first calls cost in C++ (load + every call before the steady state, less that many steady "
             "calls), and the steady median:", ""]
    rows = []
    for executor in CPP_EXECUTORS:
        r = study.get(f"cpp|{executor}")
        if not r or r["median_ms"] is None:
            continue
        steady_from = calls_to_steady(r["calls_ms"], r["median_ms"])
        n = int(steady_from) - 1 if steady_from.isdigit() else len(r["calls_ms"])
        penalty = sum(c for c in r["calls_ms"][:n] if c is not None) - n * r["median_ms"]
        rows.append([executor, f(r["load_ms"], 0), f(penalty, 0), str(n), f(r["median_ms"], 2)])
    lines += table(["C++ executor", "load ms", "first-call penalty ms", "slow calls", "steady ms"], rows)
    steady = {e: study[f"cpp|{e}"]["median_ms"] for e in CPP_EXECUTORS
              if f"cpp|{e}" in study and study[f"cpp|{e}"]["median_ms"]}
    if "profiling" in steady:
        base = steady["profiling"]
        compared = "; ".join(f"{e} {100 * (v / base - 1):+.0f}%" for e, v in steady.items() if e != "profiling")
        lines += ["", f"Steady state against the profiling executor in this run: {compared}. A stream pays the steady "
                  "time on every frame and the penalty once, so a 5% steady-state difference outweighs the whole "
                  "penalty within a few dozen frames."]
    lines += ["", "**What the app does:** it keeps LibTorch's default profiling executor and takes its slow calls "
              "before the first frame: `jitvision detect` warms up with two forwards at the input shape the first "
              "frame needs (again for each new frame size), so the penalty is part of the start-up figure above and "
              "never of a frame's latency."]
    return lines


# ---- the chart (OpenCV: matplotlib is not a dependency) ----

CPP_COLOUR, PY_COLOUR, MARK_COLOUR = (180, 119, 31), (14, 127, 255), (40, 40, 200)
FIRST_COLOUR, STEADY_COLOUR = (150, 80, 150), (60, 160, 60)
PEER_COLOUR = (120, 120, 120)  # ONNX Runtime and OpenVINO


def _panel(img, x0, y0, w, h, title, bars, unit, marker=None):
    """Horizontal bars [(label, value, colour)] in a w x h box; ``marker``: (value, label) drawn as a red line."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (x0, y0 + 22), font, 0.62, (0, 0, 0), 1, cv2.LINE_AA)
    bars = [b for b in bars if b[1] is not None]
    if not bars:
        return
    label_w, top = 250, y0 + 40
    scale_max = max([b[1] for b in bars] + ([marker[0]] if marker else [])) * 1.18
    bar_h = min(34, (h - 60) // len(bars))
    px = lambda v: x0 + label_w + int((w - label_w - 10) * v / scale_max)  # noqa: E731
    for i, (label, value, colour) in enumerate(bars):
        y = top + i * bar_h
        cv2.putText(img, label, (x0, y + bar_h // 2 + 5), font, 0.45, (30, 30, 30), 1, cv2.LINE_AA)
        cv2.rectangle(img, (x0 + label_w, y + 3), (px(value), y + bar_h - 3), colour, -1)
        cv2.putText(img, f"{value:.1f} {unit}", (px(value) + 5, y + bar_h // 2 + 5), font, 0.45, (30, 30, 30), 1,
                    cv2.LINE_AA)
    cv2.line(img, (x0 + label_w, top), (x0 + label_w, top + bar_h * len(bars)), (0, 0, 0), 1)
    if marker:
        x = px(marker[0])
        cv2.line(img, (x, top - 4), (x, top + bar_h * len(bars) + 4), MARK_COLOUR, 2)
        cv2.putText(img, marker[1], (min(x - 60, x0 + w - 200), top + bar_h * len(bars) + 20), font, 0.42,
                    MARK_COLOUR, 1, cv2.LINE_AA)


def peer_bars(raw: Dict) -> List[Tuple[str, Optional[float], Tuple[int, int, int]]]:
    """The peers' median forward (median over rounds) for the chart's forward panel; none when not measured."""
    rounds = [r["peers"] for r in raw["rounds"] if "peers" in r and not r["peers"]["skipped"]]
    names = rounds[0]["peers"] if rounds else {}
    return [(name, med(p["peers"][name]["forward"]["median_ms"] for p in rounds), PEER_COLOUR) for name in names]


def draw_chart(raw: Dict, s: Dict, path: Path) -> None:
    img = np.full((760, 1400, 3), 255, np.uint8)
    fwd = s["forward"]["det-384"]
    cpp_fwd = fwd["C++ (LibTorch, file)"]["median_ms"]
    bars = [("C++ TorchScript", cpp_fwd, CPP_COLOUR)]
    bars += [(f"Python {n}", fwd[f"Python {n}"]["median_ms"], PY_COLOUR)
             for n in ("eager", "traced", "traced+freeze", "traced+freeze+ofi")]
    bars += peer_bars(raw)
    _panel(img, 20, 10, 660, 330, "Forward only, 1x3x384x640 (median ms, lower is better)", bars, "ms")
    _panel(img, 720, 10, 660, 330, "Per frame on the 1280x720 video (steady ms)", [
        ("C++ forward only", cpp_fwd, CPP_COLOUR),
        (f"C++ pipeline, {s['cpp_video']['workers']} workers", s["cpp_video"]["per_frame_ms"], CPP_COLOUR),
        ("C++ pipeline, --workers 1", s["cpp_video_w1"]["per_frame_ms"], CPP_COLOUR),
        ("Python reference detector", s["py_video"]["per_frame_ms"], PY_COLOUR)], "ms",
        (1.10 * cpp_fwd, "target 1.10 x forward"))
    e = s["e2e"]
    _panel(img, 20, 380, 660, 330, f"Whole video, fresh process ({raw['video']['what'].split(' at ')[0]}), s", [
        ("C++ wall", e["cpp"]["wall_s"], CPP_COLOUR), ("Python reference wall", e["python"]["wall_s"], PY_COLOUR),
        ("C++ first result", e["cpp"]["first_result_s"], CPP_COLOUR),
        ("Python first result", e["python"]["first_result_s"], PY_COLOUR)], "s",
        (0.67 * e["python"]["wall_s"], "target 0.67 x Python wall") if e["python"]["wall_s"] else None)
    study = s["study"]
    bars = []
    for name in ("cpp|profiling", "cpp|legacy", "cpp|unoptimized", "profiling|traced+freeze+ofi"):
        r = study.get(name)
        if r and not r["skipped"]:
            label = f"C++ {name[4:]}" if name.startswith("cpp|") else f"Py {name.split('|')[1]}"
            bars += [(f"{label}: call 1", r["calls_ms"][0], FIRST_COLOUR),
                     (f"{label}: steady", r["median_ms"], STEADY_COLOUR)]
    _panel(img, 720, 380, 660, 330, "First call (purple) vs steady (green), ms", bars, "ms")
    cv2.putText(img, f"{raw['machine']['cpu']}, {raw['machine']['cores']} cores, {raw['threads']} threads; other "
                     f"processes took at most {max(per_step(raw, 'foreign_cores')):.2f} cores during a kept step; "
                     f"blue: C++, orange: Python, grey: peers; medians of {len(raw['rounds'])} rounds", (20, 745),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


HAND_MARKER = "<!-- measured by hand: make bench keeps everything below this line -->"


def hand_measured_tail(out: Path) -> str:
    """The sections of an existing report below HAND_MARKER (figures make bench cannot take, e.g. start-up with and
    without the CUDA libraries), to be carried into the regenerated report; '' when there are none."""
    old = out.read_text() if out.is_file() else ""
    at = old.find(HAND_MARKER)
    return "" if at < 0 else "\n" + old[at:].rstrip("\n") + "\n"


def write_report(raw: Dict, out: Path, chart: Path) -> None:
    s = summarise(raw)
    lines = report_lines(raw, s, os.path.relpath(chart, out.parent))
    text = "\n".join(lines) + "\n"
    data = os.environ.get("JITVISION_DATA_DIR")
    if data:  # commands name the data set the way a reader's machine finds it
        text = text.replace(str(Path(data).resolve()), "$JITVISION_DATA_DIR").replace(data, "$JITVISION_DATA_DIR")
    out.write_text(text + hand_measured_tail(out))
    draw_chart(raw, s, chart)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jitvision.benchreport", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="repetitions of every measurement (default 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads on both sides (default: all)")
    p.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"))
    p.add_argument("--chart", default=str(REPO / "docs" / "benchmarks.png"))
    p.add_argument("--raw", default=str(WORK / "results.json"), help="all raw results (JSON)")
    p.add_argument("--from-raw", action="store_true", help="only rewrite the report from --raw")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 round, 2 timed calls, 8 frames, no waiting for a quiet machine; writes to "
                        "build/bench/quick.md unless --out is given (the figures mean nothing)")
    args = p.parse_args(argv)
    if args.quick:
        global QUICK
        QUICK = True
        args.rounds = 1
        defaults = {"out": str(REPO / "docs" / "BENCHMARKS.md"), "chart": str(REPO / "docs" / "benchmarks.png"),
                    "raw": str(WORK / "results.json")}
        for key, name in (("out", "quick.md"), ("chart", "quick.png"), ("raw", "quick.json")):
            if getattr(args, key) == defaults[key]:
                setattr(args, key, str(WORK / name))
    if args.from_raw:
        raw = json.loads(Path(args.raw).read_text())
    else:
        if not CPP.is_file():
            raise UsageError(f"benchreport: {CPP} is not built (make build)")

        def log(msg):
            print(f"[bench {time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", flush=True)

        raw = {"machine": machine(), "threads": args.threads}
        video = WORK / ("quick_1280x720.mp4" if QUICK else "pan_1280x720.mp4")
        raw["video"] = {"path": str(video), "what": make_video(video, frames=8 if QUICK else 120)}
        det = detector_model(args.threads)
        raw["detector"] = det
        configs = configurations(str(REPO / "models" / "mnist.torchscript"), det, str(video))
        raw["rounds"] = [one_round(i, configs, det, str(video), args.threads, log) for i in range(args.rounds)]
        raw["configs"] = configs
        shape = raw["rounds"][0]["configs"]["det-384"]["cpp"]["shape"]
        raw["study"] = [first_call_study(det, "x".join(map(str, shape)), args.threads, log)
                        for _ in range(args.rounds)]
        raw["contention"] = [contention_study(det, "x".join(map(str, shape)), os.cpu_count(), log)
                             for _ in range(args.rounds)]
        raw["machine"]["load_end"] = os.getloadavg()
        Path(args.raw).write_text(json.dumps(raw, indent=1))
    write_report(raw, Path(args.out), Path(args.chart))
    print(f"wrote {args.out} and {args.chart} (raw results: {args.raw})")
    return 0


if __name__ == "__main__":
    from jitvision.__main__ import run

    sys.exit(run(main))
