"""``edgesnn detect MODEL RECORDING --out boxes.jsonl [--render out.gif]``: boxes for every window of a recording.

The recording is any file :func:`edgesnn.events.open_events` reads (EVT 2.0/2.1/3.0 RAW, DAT,
AEDAT4, npy/npz, HDF5, CSV), streamed chunk by chunk; damaged files fail with the events
package's :class:`~edgesnn.errors.EventFileError` (exit 3) unless ``--lenient`` skips and counts
the damage. Each output line is one box: ``t_us`` (window end), ``x``, ``y``, ``w``, ``h``
(sensor pixels, top-left corner), ``class_id``, ``class`` and ``score``. ``--realtime`` replays
the file paced by its timestamps through :class:`~edgesnn.events.FileSource`, as a live camera
delivers events; in Python, any source's chunks go to ``DetectorSession.push``.

A sensor larger than the model's input is fitted with ``--roi X,Y,W,H`` (crop) and then
``--downsample F`` (pool F x F blocks); boxes are mapped back to the sensor's pixels. A
mismatch names both geometries and suggests flags that fit. ``--render`` draws what the model
sees: the events after crop and downsample, the boxes in those pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.events._dtype import empty_events
from edgesnn.events.cli import progress, show_progress


def _geometry_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 304x240, got {text!r}") from None
    return w, h


def _roi_arg(text: str) -> tuple[int, int, int, int]:
    try:
        roi = tuple(int(v) for v in text.split(","))
    except ValueError:
        roi = ()
    if len(roi) != 4 or min(roi[:2]) < 0 or min(roi[2:]) < 1:
        raise argparse.ArgumentTypeError(f"expected X,Y,WIDTH,HEIGHT (X, Y >= 0, sizes >= 1), got {text!r}")
    return roi  # type: ignore[return-value]


def _downsample_arg(text: str) -> int:
    from edgesnn.detect.view import MAX_DOWNSAMPLE

    try:
        f = int(text)
    except ValueError:
        f = 0
    if not 1 <= f <= MAX_DOWNSAMPLE:
        raise argparse.ArgumentTypeError(f"expected an integer factor from 1 to {MAX_DOWNSAMPLE}, got {text!r}")
    return f


def _count_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of windows >= 0, got {text!r}")
    return n


def cmd_detect(args: argparse.Namespace) -> int:
    """Stream the recording through the detector; write JSON lines, optionally a GIF."""
    from edgesnn.detect import load_detector
    from edgesnn.detect.view import SensorView, check_fit
    from edgesnn.events.io import open_events

    if args.render and Path(args.render).suffix.lower() != ".gif":
        raise OptionError(f"expected a .gif file, got {args.render!r}", path="--render")
    if args.max_frames < 1:
        raise OptionError(f"must be at least 1, got {args.max_frames}", path="--max-frames")
    det = load_detector(args.model)
    cfg = det.config
    post = {k: v for k, v in (("score_threshold", args.score_threshold),) if v is not None}
    if post:
        import dataclasses

        from edgesnn.detect import Detector, DetectorConfig

        det = Detector(det.front, det.ann, DetectorConfig(**{**dataclasses.asdict(cfg), **post}))
        cfg = det.config
    frames: list = []
    n_boxes = n_windows = n_events = 0
    with open_events(args.recording, format=args.input_format, lenient=args.lenient, geometry=args.geometry) as reader:
        view = SensorView(roi=args.roi, downsample=args.downsample)
        sensor = None if reader.geometry is None else tuple(reader.geometry)
        check_fit(view, sensor, (cfg.width, cfg.height), cli=True, path=args.recording)  # in flag syntax
        session = det.session(num_threads=1, start_us=args.start_us, roi=args.roi, downsample=args.downsample,
                              geometry=sensor, max_gap_windows=args.max_gap_windows)  # fmt: skip
        recent = empty_events()
        out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
        try:

            def emit(results: list[np.ndarray]) -> None:
                nonlocal n_boxes, n_windows
                for boxes, end in zip(results, session.last_window_ends_us, strict=True):
                    n_windows += 1
                    for b in boxes:
                        row = {"t_us": int(b["t_us"]), "x": round(float(b["x"]), 2), "y": round(float(b["y"]), 2),
                               "w": round(float(b["w"]), 2), "h": round(float(b["h"]), 2),
                               "class_id": int(b["class_id"]), "class": cfg.classes[int(b["class_id"])],
                               "score": round(float(b["score"]), 4)}  # fmt: skip
                        out.write(json.dumps(row) + "\n")
                    n_boxes += len(boxes)
                    if args.render and len(frames) < args.max_frames:
                        from edgesnn.detect.render import draw_window

                        t = recent["t"]
                        lo, hi = np.searchsorted(t, end - cfg.window_us), np.searchsorted(t, end)
                        frames.append(draw_window(recent[lo:hi], view.to_model(boxes), width=cfg.width,
                                                  height=cfg.height, classes=cfg.classes))  # fmt: skip

            chunks = reader.chunks()
            if args.realtime:
                from edgesnn.events.sources import FileSource

                chunks = iter(FileSource(reader, realtime=True, speed=args.speed, slice_us=cfg.bin_us))
            chunks = progress(chunks, enabled=show_progress(args), desc=Path(args.recording).name)
            for chunk in chunks:
                n_events += len(chunk)
                if args.render:
                    recent = np.concatenate((recent, view(chunk)))
                emit(session.push(chunk))
                if args.render and len(recent):
                    # keep only what the window still being filled can need
                    recent = recent[recent["t"] >= int(recent["t"][-1]) - 2 * cfg.window_us]
            skipped_windows = session.skipped_windows
            emit(session.finish())
        finally:
            if out is not sys.stdout:
                out.close()
        skipped = dict(reader.skipped)
    if args.render:
        if not frames:
            raise OptionError("no events to render", path=args.recording)
        from edgesnn.detect.render import save_gif

        save_gif(frames, args.render, frame_ms=cfg.window_us // 1000)
    if not getattr(args, "quiet", False):
        extra = f", skipped {skipped}" if any(skipped.values()) else ""
        if skipped_windows:
            extra += f", {skipped_windows} empty windows not run (gaps over {session.max_gap_windows} windows)"
        print(f"{n_events} events, {n_windows} windows, {n_boxes} boxes -> {args.out}{extra}", file=sys.stderr)
    return 0


def add_detect_command(subparsers) -> argparse.ArgumentParser:
    """Add ``detect`` to the ``edgesnn`` command's subparsers."""
    p = subparsers.add_parser("detect", help="detect objects in an event recording with a detector bundle")
    p.add_argument("model", help="detector .esnn (python -m tools.train_detect)")
    p.add_argument("recording", help="event file: .raw (EVT2/2.1/3), .dat, .aedat4, .npy/.npz, .h5, .csv")
    p.add_argument("-o", "--out", required=True, help="boxes.jsonl, or - for stdout")
    p.add_argument("--render", help="also draw the boxes on each window's events into this .gif")
    p.add_argument("--max-frames", type=int, default=300, help="at most this many GIF frames (default 300)")
    p.add_argument("--start-us", type=int, help="start of the first window in µs (default: the first event's time)")
    p.add_argument(
        "--roi",
        type=_roi_arg,
        metavar="X,Y,W,H",
        help="crop the sensor to this region first (sensor pixels); boxes stay in sensor pixels",
    )
    p.add_argument(
        "--downsample",
        type=_downsample_arg,
        default=1,
        metavar="F",
        help="then pool FxF pixel blocks into one (1 to 16; default 1)",
    )
    p.add_argument(
        "--max-gap-windows",
        type=_count_arg,
        metavar="N",
        help="run at most N empty windows in a row, skip the rest of a longer gap (default: 10 s worth)",
    )
    p.add_argument("--realtime", action="store_true", help="replay paced by the timestamps, as a live camera")
    p.add_argument("--speed", type=float, default=1.0, help="with --realtime: this many times faster")
    p.add_argument("--score-threshold", type=float, help="override the bundle's score threshold")
    p.add_argument("--input-format", help="input format, when detection fails (evt2, evt21, evt3, dat, ...)")
    p.add_argument("--lenient", action="store_true", help="skip and count damaged words instead of failing")
    p.add_argument("--geometry", type=_geometry_arg, help="sensor WIDTHxHEIGHT when the file records none")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no summary line")
    p.set_defaults(func=cmd_detect)
    return p
