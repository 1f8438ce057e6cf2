"""The shipped hybrid SNN-ANN detector: cars and pedestrians in 304x240 event streams, boxes every 50 ms.

Trained by tools.train_detect (variant ``hybrid``: PLIF front + attention bridge + conv ANN + YOLOX-style
heads) on the generated detection set, measured by tools.eval.detect (COCO mAP through pycocotools) on
its test clips.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from tools.models._ship import ensure_dataset, stamped, target

log = logging.getLogger("edgesnn.models")

NAME = "detector"
STEPS, BATCH, SEED = 300, 4, 0
FROM_US, SCORE_THRESHOLD = 100_000, 0.01


def build(data: Path, work: Path, out_dir: Path | None, *, steps: int = STEPS, quiet: bool = False) -> dict[str, Any]:
    """Generate the detection set if needed, train the hybrid, measure mAP, write the shipped bundle."""
    from edgesnn.detect import Detector, load_detector, write_detector
    from tools.datasets import detection
    from tools.eval.detect import evaluate
    from tools.train_detect.arch import preset
    from tools.train_detect.export import build_detector
    from tools.train_detect.train import TrainConfig, train

    ensure_dataset(data, detection.main, ["--size", "full", "--quiet"])
    work.mkdir(parents=True, exist_ok=True)
    spec = preset("hybrid")
    cfg = TrainConfig(steps=steps, batch=BATCH, seed=SEED, warmup_windows=0)
    params, history = train(detection.load_split(data, "train"), spec, cfg)
    trained = work / "hybrid.esnn"
    write_detector(build_detector(params, spec, score_threshold=0.05), trained)
    test = detection.load_split(data, "test")
    scores = evaluate(str(trained), test, from_us=FROM_US, score_threshold=SCORE_THRESHOLD)
    det = load_detector(trained)
    windows = f"windows from {FROM_US // 1000} ms on, score threshold {SCORE_THRESHOLD}"
    evaluation = [
        {"metric": "mAP", "value": round(float(scores["mAP"]), 4), "split": "test", "samples": len(test),
         "dataset": "tools.datasets.detection full", "note": f"COCO mAP@[.5:.95] by pycocotools; {windows}"},
        {"metric": "mAP50", "value": round(float(scores["mAP50"]), 4), "split": "test", "samples": len(test),
         "dataset": "tools.datasets.detection full", "note": windows},
    ]  # fmt: skip
    snn, ann = det.parameters()["snn"], det.parameters()["ann"]
    front = stamped(
        det.front,
        task="object detection in event streams: " + ", ".join(det.config.classes),
        description=f"hybrid SNN-ANN detector, {det.config.width}x{det.config.height} events, boxes every"
        f" {det.config.window_us // 1000} ms; {snn + ann} parameters ({snn} SNN + {ann} ANN);"
        f" trained {steps} steps of batch {BATCH}, seed {SEED}",
        made_by="python -m tools.models detector",
        evaluation=evaluation,
    )
    path = target(NAME, out_dir)
    write_detector(Detector(front, det.ann, det.config), path)
    load_detector(path)
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    summary = {"name": NAME, "path": str(path), "evaluation": evaluation, "final_loss": float(sum(history[-20:]) / 20),
               "train": dataclasses.asdict(cfg)}  # fmt: skip
    return summary
