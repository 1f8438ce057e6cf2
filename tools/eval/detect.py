"""COCO mAP of detector bundles on a split of the detection dataset, run by the edgesnn runtime itself.

Each clip streams through a fresh :class:`~edgesnn.detect.DetectorSession` from t = 0, SNN state
carried across windows; the detections of every window whose end carries labels and is at
least ``--from-us`` into the clip (default 100 ms: the first window is warm-up) are scored
against the Gen1-style boxes with pycocotools (mAP over IoU 0.50:0.95, and mAP at 0.50), as
RVT and the Gen1 papers do (without their minimum-box-size filter: the dataset's labelling rule
already drops boxes under 8 px). Parameter counts come from :meth:`Detector.parameters`.

    python -m tools.eval.detect --data data/detect --split test hybrid.esnn snn.esnn ann.esnn --out results.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import sys
import time

import numpy as np

from edgesnn.cli import HelpFormatter
from edgesnn.detect import Detector, DetectorConfig, load_detector
from edgesnn.errors import MissingDependencyError
from tools.datasets.detection import DetectionSplit, load_split

log = logging.getLogger("tools.eval.detect")


def detections(detector: Detector, split: DetectionSplit, *, chunk_events: int = 50_000) -> list[list[np.ndarray]]:
    """Per clip, the box arrays of its windows in order (the runtime's streaming path, chunk by chunk)."""
    out = []
    for i in range(len(split)):
        ev = split.events(i)
        s = detector.session(start_us=0)
        chunks = [ev[k : k + chunk_events] for k in range(0, len(ev), chunk_events)]
        out.append(list(s.run(chunks)))
    return out


def coco_map(
    split: DetectionSplit, dets: list[list[np.ndarray]], classes, *, window_us: int, from_us: int
) -> dict[str, float]:
    """COCO mAP and mAP50 of ``dets`` (windows from t = 0) against the split's boxes at window ends >= ``from_us``.

    Every window end up to the clip's duration is an image, labelled or not, so false positives
    in windows without objects count too.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise MissingDependencyError("evaluation needs pycocotools (in the dev extra)") from exc
    images, anns, results = [], [], []
    for i in range(len(split)):
        gt = split.boxes(i)
        for k, boxes in enumerate(dets[i]):
            t = (k + 1) * window_us
            if t < from_us or t > int(split.arrays["duration_us"]):
                continue
            img_id = len(images) + 1
            images.append({"id": img_id, "width": split.geometry[0], "height": split.geometry[1]})
            for b in gt[gt["t"] == t]:
                anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(b["class_id"]) + 1,
                             "bbox": [float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"])],
                             "area": float(b["w"] * b["h"]), "iscrowd": 0})  # fmt: skip
            for b in boxes:
                results.append({"image_id": img_id, "category_id": int(b["class_id"]) + 1, "score": float(b["score"]),
                                "bbox": [float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"])]})  # fmt: skip
    gt_coco = COCO()
    gt_coco.dataset = {"images": images, "annotations": anns,
                       "categories": [{"id": k + 1, "name": c} for k, c in enumerate(classes)]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        dt_coco = gt_coco.loadRes(results) if results else COCO()
        ev = COCOeval(gt_coco, dt_coco, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"mAP": float(ev.stats[0]), "mAP50": float(ev.stats[1]), "images": len(images), "boxes": len(anns)}


def evaluate(path: str, split: DetectionSplit, *, from_us: int, score_threshold: float) -> dict:
    """mAP, mAP50, parameters and mean runtime per window of one bundle."""
    det = load_detector(path)
    det = Detector(det.front, det.ann, DetectorConfig(**{**dataclasses.asdict(det.config),
                                                         "score_threshold": score_threshold}))  # fmt: skip
    t0 = time.perf_counter()
    dets = detections(det, split)
    seconds = time.perf_counter() - t0
    n_windows = sum(len(d) for d in dets)
    scores = coco_map(split, dets, det.config.classes, window_us=det.config.window_us, from_us=from_us)
    variant = det.front.graph.metadata.get("variant", "?")
    return {"model": path, "variant": variant, **scores, "parameters": det.parameters(),
            "ms_per_window": 1e3 * seconds / max(1, n_windows)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Evaluate bundles; print a Markdown table and write JSON with ``--out``."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.eval.detect", description=__doc__.splitlines()[0]
    )
    parser.add_argument("models", nargs="+", help="detector bundles")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--from-us", type=int, default=100_000)
    parser.add_argument("--score-threshold", type=float, default=0.01)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    split = load_split(args.data, args.split)
    rows = [evaluate(m, split, from_us=args.from_us, score_threshold=args.score_threshold) for m in args.models]
    print("| model | variant | params (SNN + ANN) | mAP | mAP50 | ms/window |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        p = r["parameters"]
        print(f"| {r['model']} | {r['variant']} | {p['total']} ({p['snn']} + {p['ann']}) | {r['mAP']:.3f} "
              f"| {r['mAP50']:.3f} | {r['ms_per_window']:.1f} |")  # fmt: skip
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"split": args.split, "from_us": args.from_us, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
