"""The `make bench` report (python/jitvision/benchreport.py) from a small hand-made raw result: every section
renders, the targets get the right verdicts, and the many-streams section reads `jitvision bench --streams`' JSON.
No model runs: these take well under a second."""
from __future__ import annotations

import copy

import cv2
import pytest

from jitvision import benchreport as br

STEP = {"foreign_cores": 0.02, "load_at_start": 1.5}
STAGES = ("capture", "preprocess", "inference", "postprocess", "output")


def stats(median: float, n: int = 30) -> dict:
    return {"median_ms": median, "p90_ms": median * 1.1, "min_ms": median * 0.9, "n": n}


def cpp_video(per_frame_ms: float, forward_ms: float) -> dict:
    stages = {k: stats(2.0, 120) for k in STAGES}
    stages["read"] = stats(0.0, 0)  # no digit reader: a stage without samples is left out of the report
    return {"fps": 1000 / per_frame_ms, "per_frame_ms": per_frame_ms,
            "per_frame_over_forward": per_frame_ms / forward_ms, "first_result_s": 0.4, "wall_s": 5.0, "workers": 2,
            "threads_per_worker": 1, "stages": stages}


def streams_run(batch: int, fps: float, per_stream: list) -> dict:
    """One run of `jitvision bench --streams` as the C++ side reports it."""
    mean = sum(per_stream) / len(per_stream)
    rates = {"min": min(per_stream), "mean": mean, "max": max(per_stream),
             "spread": max(mean - min(per_stream), max(per_stream) - mean) / mean}
    return {"batch_asked": batch, "batch": batch, "frames": 480, "wall_s": 9.0, "fps": fps, "workers": 1,
            "threads_per_worker": 2, "per_stream_fps": rates,
            "stages": {k: stats(20.0 / batch if k == "inference" else 2.0) for k in STAGES},
            "per_stream": [{"read": 120, "processed": 120, "dropped": 0, "fps": r, "end": "ended"} for r in per_stream]}


def streams_result(batched: dict, unbatched: dict) -> dict:
    return {**STEP, "streams": {"file": "pan.mp4", "streams": 4, "batched": batched, "unbatched": unbatched,
                                "speedup": batched["fps"] / unbatched["fps"]}}


def one_round(cpp_fwd: float = 15.0, per_frame: float = 18.0) -> dict:
    cpp = {key: {"load_ms": 50.0, "first_call_ms": 45.0, "forward": stats(cpp_fwd), "shape": [1, 3, 384, 640],
                 "peak_rss_mb": 600.0, **STEP} for key in ("det-640", "det-384")}
    cpp["det-384"]["video"] = cpp_video(per_frame, cpp_fwd)
    variants = {name: {"skipped": None, "source": "the traced file", "load_ms": 40.0, "first_call_ms": 60.0,
                       "forward": stats(cpp_fwd * 0.9)} for name in br.FORWARD_VARIANTS}
    python = {"variants": variants, **STEP,
              "video": {"fps": 40.0, "per_frame_ms": 25.0, "first_result_s": 1.5, "wall_s": 6.0, "load_ms": 300.0,
                        "stages": {k: stats(3.0) for k in ("capture", "detect", "output")}}}
    e2e = {"cpp": {"wall_s": 3.0, "first_result_s": 0.6, "frames": 120, "cpu_s": 5.5, **STEP},
           "python": {"wall_s": 6.0, "first_result_s": 2.0, "frames": 120, "cpu_s": 11.0, **STEP}}
    return {"configs": {key: {"cpp": cpp[key], "python": python} for key in cpp}, "e2e": e2e,
            "e2e_commands": {"cpp": "build/jitvision detect ...", "python": "python -m jitvision yolov5 detect ..."},
            "one_worker": {"video": cpp_video(per_frame * 1.2, cpp_fwd), **STEP},
            "one_worker_command": "build/jitvision bench --workers 1 ...",
            "streams": streams_result(streams_run(4, 60.0, [15.0, 15.5, 14.5, 15.0]),
                                      streams_run(1, 40.0, [10.0, 10.0, 10.0, 10.0])),
            "streams_command": "build/jitvision bench --streams 4 --batch 4 ..."}


def fixture_raw() -> dict:
    """Two rounds of every step make bench takes, with round figures that are easy to check by hand."""
    calls = [45.0, 30.0] + [15.0] * 9
    study = {f"cpp|{e}": {"load_ms": 50.0, "calls_ms": calls, "median_ms": 15.0, "skipped": None,
                          "command": f"build/jitvision bench --jit-executor {e}", **STEP} for e in br.CPP_EXECUTORS}
    contention = [{"threads": t, "policy": p, "busy": busy, "median_ms": 15.0 * (2 if busy else 1),
                   "first_call_ms": 45.0, "command": "build/jitvision bench ...", **STEP}
                  for t, p in ((2, "default"), (2, "PASSIVE"), (1, "default")) for busy in (False, True)]
    return {"machine": {"cpu": "Test CPU", "cores": 2, "load_start": [1.0, 1.0, 1.0], "load_end": [1.2, 1.1, 1.0],
                        "commit": "abc1234", "cpp_version": "jitvision 0.0", "python": "3.11", "torch": "2.14",
                        "opencv_python": "5.0", "numpy": "2.0", "date": "2026-12-01T12:00"},
            "threads": 2,
            "video": {"path": str(br.REPO / "build" / "bench" / "pan_1280x720.mp4"),
                      "what": "120 frames 1280x720 at 30 fps panning over zidane.jpg"},
            "detector": {"what": "yolov5n", "made_by": "python -m jitvision yolov5 import", "path": "y.torchscript",
                         "weights": None},
            "configs": [{"key": key, "title": f"yolov5n {key}", "commands": {"cpp": "c", "python": "p"}}
                        for key in ("det-640", "det-384")],
            "rounds": [one_round(), one_round()],
            "study": [study, study],
            "contention": [contention, contention]}


def section(lines: list, title: str) -> str:
    """The text of one `## ` section of the report."""
    start = next(i for i, line in enumerate(lines) if line.startswith("## ") and title in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def report(raw: dict) -> list:
    return br.report_lines(raw, br.summarise(raw), "chart.png")


def test_every_section_renders_from_the_fixture():
    lines = report(fixture_raw())
    assert lines[0] == "# Benchmarks"
    for title in ("Machine", "Targets", "Forward-only latency", "The whole video", "4 streams at once",
                  "End to end", "First call", "A shared CPU"):
        assert section(lines, title)
    assert not any("steps were disturbed" in line for line in lines)


def test_targets_get_their_verdicts():
    targets = section(report(fixture_raw()), "Targets")
    assert "**missed** by 9% (1.20 x > 1.1 x)" in targets  # 18 ms per frame over a 15 ms forward
    assert "**met** (0.50 x <= 0.67 x)" in targets  # 3 s against 6 s
    assert "**met** (0.60 s <= 2 s)" in targets
    assert "**missed** by 6% (1.11 x > 1.05 x)" in targets  # Python's forward at 0.9 x the C++ one
    assert "- **Per frame** (18.0 ms vs 15.0 ms forward-only, 9% over the target)" in targets  # and why


def test_streams_section_reports_the_speedup_and_the_spread():
    text = section(report(fixture_raw()), "4 streams at once")
    assert "| `--batch 4` | 60.0 | 14.5 / 15.0 / 15.5 | 3% | 1 x 2 | 5.0 | 2.0 |" in text
    assert "| `--batch 1` | 40.0 | 10.0 / 10.0 / 10.0 | 0% | 1 x 2 | 20.0 | 2.0 |" in text
    assert "**met** (1.50 x >= 1.3 x)" in text
    assert "**met** (3.33% <= 20%)" in text
    assert "Command: `build/jitvision bench --streams 4 --batch 4 ...`" in text


def test_streams_targets_missed_say_by_how_much():
    raw = fixture_raw()
    for r in raw["rounds"]:  # batching gains 10% and one stream starves
        r["streams"] = streams_result(streams_run(4, 44.0, [8.0, 12.0, 12.0, 12.0]),
                                      streams_run(1, 40.0, [10.0, 10.0, 10.0, 10.0]))
    text = section(report(raw), "4 streams at once")
    assert "**missed** by 15% (1.10 x < 1.3 x)" in text
    assert "**missed** by 36% (27.27% > 20%)" in text  # 8 against a mean of 11


def test_speedup_is_the_median_of_per_round_ratios():
    raw = fixture_raw()
    raw["rounds"][0]["streams"] = streams_result(streams_run(4, 60.0, [15.0] * 4), streams_run(1, 40.0, [10.0] * 4))
    raw["rounds"][1]["streams"] = streams_result(streams_run(4, 30.0, [7.5] * 4), streams_run(1, 30.0, [7.5] * 4))
    s = br.summarise(raw)["streams"]
    assert s["speedup"] == pytest.approx((1.5 + 1.0) / 2)
    assert s["batched"]["fps"] == pytest.approx(45.0) and s["unbatched"]["fps"] == pytest.approx(35.0)


def test_a_raw_result_without_streams_still_renders():
    raw = fixture_raw()
    for r in raw["rounds"]:
        del r["streams"], r["streams_command"]
    lines = report(raw)
    assert not any("streams at once" in line for line in lines)
    assert section(lines, "End to end")


def test_disturbed_steps_are_flagged():
    raw = fixture_raw()
    raw["rounds"][1]["streams"]["foreign_cores"] = 0.8
    lines = report(raw)
    assert "> **1 of" in "\n".join(lines) and "(up to 0.80)" in "\n".join(lines)


def test_verdicts():
    assert br.verdict(None, 1.1) == br.verdict_at_least(None, 1.3) == "not measured"
    assert br.verdict(1.0, 1.1, " x") == "**met** (1.00 x <= 1.1 x)"
    assert br.verdict(1.21, 1.1, " x") == "**missed** by 10% (1.21 x > 1.1 x)"
    assert br.verdict_at_least(1.3, 1.3, " x") == "**met** (1.30 x >= 1.3 x)"
    assert br.verdict_at_least(0.65, 1.3, " x") == "**missed** by 50% (0.65 x < 1.3 x)"


def test_write_report_writes_markdown_and_chart(tmp_path):
    out, chart = tmp_path / "BENCHMARKS.md", tmp_path / "chart.png"
    out.write_text(f"old\n{br.HAND_MARKER}\n## Start-up by hand\n")
    br.write_report(copy.deepcopy(fixture_raw()), out, chart)
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "## 4 streams at once" in text
    assert text.rstrip().endswith("## Start-up by hand")  # the hand-measured tail is carried over
    image = cv2.imread(str(chart))
    assert image is not None and image.shape == (760, 1400, 3)
