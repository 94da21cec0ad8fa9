"""Scores detections of digits against a generated video's truth; used by `make demo` and by the tests.

``python -m jitvision.demo_report DEMO_DIR`` reads DEMO_DIR/scene-truth.jsonl, detect.jsonl and digits-read.jsonl
(written by `make demo`) and prints how many digits the detector found with the right class, and how many the
two-stage reading (detector box, MNIST classifier on the crop) got right.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Score:
    digits: int = 0           # digits in the truth
    found: int = 0            # matched by a box with IoU >= 0.5
    detector_right: int = 0   # ... whose detector class is the digit
    reader_right: int = 0     # ... whose MNIST reading is the digit (two-stage files only)

    def line(self) -> str:
        def pct(n):
            return f"{n}/{self.digits} ({100.0 * n / max(self.digits, 1):.1f}%)"
        text = f"found {pct(self.found)}, detector class right {pct(self.detector_right)}"
        return text + (f", MNIST reading right {pct(self.reader_right)}" if self.reader_right else "")


def read_jsonl(path: Path) -> List[Dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def score(predictions: List[Dict], truth: List[Dict], iou_threshold: float = 0.5) -> Score:
    """Greedy one-to-one matching per frame, best IoU first."""
    by_frame = {p["frame"]: p["detections"] for p in predictions}
    s = Score()
    for t in truth:
        dets = list(by_frame.get(t["frame"], []))
        for box, cls in zip(t["boxes"], t["cls"]):
            s.digits += 1
            if not dets:
                continue
            best = max(dets, key=lambda d: _iou(d["xyxy"], box))
            if _iou(best["xyxy"], box) < iou_threshold:
                continue
            dets.remove(best)
            s.found += 1
            s.detector_right += int(best["cls"] == cls)
            s.reader_right += int(best.get("digit") == cls)
    return s


def main(argv=None) -> int:
    demo = Path((argv or sys.argv[1:])[0])
    truth = read_jsonl(demo / "scene-truth.jsonl")
    kind = truth[0].get("digits", "?") if truth else "?"
    print(f"== scored against the generated truth ({len(truth)} frames, digits from {kind})")
    print("   detect:           " + score(read_jsonl(demo / "detect.jsonl"), truth).line())
    print("   digits --source:  " + score(read_jsonl(demo / "digits-read.jsonl"), truth).line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
