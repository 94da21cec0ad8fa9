"""COCO-style AP on hand-built cases whose value is worked out by hand (101 recall points 0, 0.01, ..., 1)."""
import math

import numpy as np
import pytest

from jitvision.yolov5.metrics import DetectionStats, average_precision, box_iou, match

GT = np.array([[0, 0, 100, 100], [200, 200, 300, 300]], float)


def run(images, nc=2):
    """images: (det_boxes, det_scores, det_classes, gt_boxes, gt_classes) per image."""
    stats = DetectionStats(nc)
    for image in images:
        stats.add(*image)
    return stats.compute()


def test_box_iou():
    assert box_iou([[0, 0, 100, 100]], [[0, 0, 100, 50], [50, 0, 150, 100], [200, 200, 210, 210]]) == \
        pytest.approx(np.array([[0.5, 1 / 3, 0.0]]))


def test_perfect_detections_score_one():
    m = run([(GT, [0.9, 0.8], [0, 1], GT, [0, 1])])
    assert (m.map50, m.map, m.precision, m.recall) == (1.0, 1.0, 1.0, 1.0)


def test_no_predictions_score_zero():
    m = run([(np.zeros((0, 4)), [], [], GT, [0, 1])])
    assert (m.map50, m.map, m.recall) == (0.0, 0.0, 0.0)


def test_no_ground_truth_is_undefined_not_zero():
    m = run([(GT, [0.9, 0.8], [0, 1], np.zeros((0, 4)), [])])
    assert math.isnan(m.map50) and math.isnan(m.map) and m.ap50 == {}
    assert m.precision == 0.0  # two confident false positives


def test_class_without_ground_truth_is_left_out_of_the_mean():
    # class 1 has only a false positive and no ground truth: it does not drag class 0's perfect AP down
    m = run([(np.array([GT[0], GT[1]]), [0.9, 0.95], [0, 1], GT[:1], [0])])
    assert m.ap50 == {0: 1.0} and m.map50 == 1.0


def test_duplicate_detection_is_a_false_positive():
    # gt A, B; detections: A (0.9), A again (0.8), B (0.7) -> TP, FP, TP
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; interpolated: 1 for r <= 0.5 (51 points), 2/3 above (50 points)
    dets = np.array([GT[0], GT[0] + 1, GT[1]])
    tp = match(dets, [0.9, 0.8, 0.7], [0, 0, 0], GT, [0, 0])
    assert tp[:, 0].tolist() == [True, False, True]
    m = run([(dets, [0.9, 0.8, 0.7], [0, 0, 0], GT, [0, 0])], nc=1)
    assert m.map50 == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)


def test_lower_scored_duplicate_after_all_matches_costs_nothing():
    # the duplicate comes after full recall: precision at every recall level stays 1
    dets = np.array([GT[0], GT[1], GT[0] + 1])
    m = run([(dets, [0.9, 0.8, 0.7], [0, 0, 0], GT, [0, 0])], nc=1)
    assert m.map50 == 1.0


def test_half_recall():
    # one of two boxes found, precision 1: recall points 0..0.5 (51 of 101) score 1
    m = run([(GT[:1], [0.9], [0], GT, [0, 0])], nc=1)
    assert m.map50 == pytest.approx(51 / 101)
    assert m.recall == 0.5 and m.precision == 1.0


def test_iou_thresholds():
    # IoU 0.77: a hit at 0.50, 0.55, ..., 0.75 (6 of 10 thresholds), a miss at 0.80 and above
    det = np.array([[0, 0, 100, 77]])
    m = run([(det, [0.9], [0], GT[:1], [0])], nc=1)
    assert m.map50 == 1.0 and m.map == pytest.approx(0.6)


def test_wrong_class_is_a_miss_for_both_classes():
    m = run([(GT[:1], [0.9], [1], GT[:1], [0])])
    assert m.ap50 == {0: 0.0} and m.map50 == 0.0


def test_greedy_matching_by_confidence():
    # the confident detection overlaps both boxes, the best match is the first; the weaker one then takes
    # the second box even though it overlaps the first more
    gt = np.array([[0, 0, 100, 100], [60, 0, 160, 100]], float)
    dets = np.array([[5, 0, 105, 100], [28, 0, 128, 100]], float)  # IoUs: 0.905 / 0.290, 0.5625 / 0.515
    tp = match(dets, [0.9, 0.8], [0, 0], gt, [0, 0], thresholds=[0.5])
    assert tp[:, 0].tolist() == [True, True]
    # the other way round, the confident one takes the box it overlaps most and the other finds none free
    tp = match(dets, [0.8, 0.9], [0, 0], gt, [0, 0], thresholds=[0.5])
    assert tp[:, 0].tolist() == [False, True]


def test_ranking_across_images():
    # image 1: a FP at 0.9; image 2: a TP at 0.8 -> precision 0, 1/2 at recall 0, 1: AP = 1/2 everywhere
    m = run([(GT[1:], [0.9], [0], np.zeros((0, 4)), []), (GT[:1], [0.8], [0], GT[:1], [0])], nc=1)
    assert m.map50 == pytest.approx(0.5)


def test_average_precision_edge_cases():
    assert average_precision(np.array([], bool), 3) == 0.0
    assert math.isnan(average_precision(np.array([True]), 0))
    assert average_precision(np.array([False, True]), 1) == pytest.approx(0.5)
