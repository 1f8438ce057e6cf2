"""AEDAT4 -> EVT3 / EVT2 / DAT of a real epoch-stamped recording: output size and time, exact round trip.

The recording is the DAVIS346 AEDAT4 file that ships in faery 0.7.1's source archive, fetched once
from the package registry's simple index (sha256 checked) into a cache folder. Each conversion runs
as a user runs it (``edgesnn events convert``, in process), ``--repeats`` times; the median is
reported beside faery's own conversion of the same file (``faery.events_stream_from_file(...).to_file``),
timed the same way in the same run. Prints JSON.

    python tools/bench/compact_time.py [--repeats 5] [--cache ~/.cache/edgesnn-bench]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `edgesnn` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from edgesnn.cli import HelpFormatter
from tools.bench.recordings import RECORDINGS, fetch

FORMATS = {"evt3": ("out.raw", []), "evt2": ("out.raw", ["--format", "evt2"]), "dat": ("out.dat", [])}


def fetch_recording(cache: Path) -> Path:
    """The DAVIS346 AEDAT4 file of faery's source archive, from the cache or the registry."""
    return fetch(RECORDINGS["aedat4"][0], cache)


def timed(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    """Convert the recording to each format with edgesnn and with faery; print sizes, times and checks."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "edgesnn-bench"))
    args = ap.parse_args(argv)
    import faery

    from edgesnn.cli import main as edgesnn
    from edgesnn.events.io import read_events

    src = fetch_recording(Path(args.cache))
    ev = read_events(src)
    out: dict = {"recording": src.name, "input_bytes": src.stat().st_size, "events": int(len(ev)),
                 "first_t_us": int(ev["t"][0]), "repeats": args.repeats, "formats": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, (name, extra) in FORMATS.items():
            path = Path(tmp) / f"{fmt}_{name}"
            argv_ = ["--quiet", "events", "convert", str(src), str(path), *extra]
            seconds = timed(lambda argv_=argv_: edgesnn(argv_), args.repeats)
            back = read_events(path)
            peer = Path(tmp) / f"faery_{fmt}_{name}"
            kw = {"version": fmt} if fmt != "dat" else {}
            peer_s = timed(lambda peer=peer, kw=kw: faery.events_stream_from_file(str(src)).to_file(str(peer), **kw),
                           args.repeats)  # fmt: skip
            out["formats"][fmt] = {
                "edgesnn_bytes": path.stat().st_size,
                "size_ratio": path.stat().st_size / out["input_bytes"],
                "edgesnn_seconds": seconds,
                "exact_round_trip": bool(np.array_equal(back, ev)),
                "faery_bytes": peer.stat().st_size,
                "faery_seconds": peer_s,
                "time_ratio_to_faery": seconds / peer_s,
            }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
