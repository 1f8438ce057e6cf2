"""Event-file decoding speed (issue 3): million events per second, one thread.

Builds one camera-like synthetic recording (edges crossing a 1280x720 sensor: events come in
short runs of neighbouring pixels on one row at one microsecond, around a moving object, at a
rate swinging between about 1 and 10 Mev/s), writes it with faery as EVT 2.0, EVT 3.0 and DAT v2
and with edgesnn's writers, and decodes each file with edgesnn (C kernel, and the numpy fallback
for reference), faery, expelliarmus and evlib, whichever are installed. Every decoder must return
the recording's events (checked once per file; a decoder that does not is reported with
``"correct": false`` and left out of the "fastest peer"). Prints one JSON document: per format
and decoder the median (and min, max) Mev/s over the repeats, taken round-robin across decoders so a change in
machine load hits all alike, and ours / fastest peer.

    python tools/bench/events.py [--events 4000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `edgesnn` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# One thread for every library (numpy, Rust rayon pools, Polars).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS", "POLARS_MAX_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from edgesnn.cli import HelpFormatter  # noqa: E402
from edgesnn.events import dat, evt2, evt3  # noqa: E402
from edgesnn.events._dtype import EVENT_DTYPE  # noqa: E402
from edgesnn.events._wordstream import NATIVE  # noqa: E402
from edgesnn.events.io import open_events  # noqa: E402

WIDTH, HEIGHT = 1280, 720
SEED = 2024
TARGET_EVT3_MEVS = 50.0


def camera_like(n: int, seed: int = SEED) -> np.ndarray:
    """``n`` events shaped like a sensor's output (see the module docstring), time-sorted."""
    rng = np.random.default_rng(seed)
    runs = n // 2 + 16
    length = rng.geometric(0.45, runs)  # run length: mean ~2.2 pixels
    # Run start times: a rate of 1..10 Mev/s that swings with a 150 ms period.
    tt = np.arange(2_000_000)
    rate = 1.0 + 9.0 * (0.5 + 0.5 * np.sin(2 * np.pi * tt / 150_000)) ** 2  # events per µs
    cum = np.cumsum(rate / length.mean())
    t_run = np.searchsorted(cum, np.arange(runs) + rng.random(runs))
    cx = 640 + 420 * np.sin(2 * np.pi * t_run / 700_000)
    cy = 360 + 250 * np.cos(2 * np.pi * t_run / 900_000)
    x0 = np.clip(cx + rng.normal(0, 60, runs), 0, WIDTH - 16).astype(np.int64)
    y0 = np.clip(cy + rng.normal(0, 40, runs), 0, HEIGHT - 1).astype(np.int64)
    p0 = (rng.random(runs) < 0.5 + 0.3 * np.sin(2 * np.pi * t_run / 300_000)).astype(np.int64)
    rid = np.repeat(np.arange(runs), length)[:n]
    offset = np.arange(len(rid)) - np.repeat(np.cumsum(length) - length, length)[:n]
    ev = np.empty(len(rid), EVENT_DTYPE)
    ev["t"], ev["y"], ev["x"], ev["p"] = t_run[rid], y0[rid], x0[rid] + offset, p0[rid]
    # A sensor reads out row by row within a timestamp.
    return ev[np.lexsort((ev["x"], ev["y"], ev["t"]))]


def round_robin(fns: dict[str, Callable[[], object]], n: int, repeats: int) -> dict[str, dict[str, float]]:
    """``time_mevs`` for several decoders, interleaved so that a change in machine load hits all alike."""
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(n / (time.perf_counter() - t0) / 1e6)
    return {
        k: {"median": round(float(np.median(v)), 1), "min": round(min(v), 1), "max": round(max(v), 1)}
        for k, v in rates.items()
    }


def _as_ours(t, x, y, p) -> np.ndarray:
    out = np.empty(len(t), EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out


def peers(fmt: str, path: Path) -> dict[str, Callable[[], np.ndarray]]:
    """Decoders of other projects for this file that are installed, each returning EVENT_DTYPE."""
    found: dict[str, Callable[[], np.ndarray]] = {}
    try:
        import faery.extension as fe

        if fmt == "dat":

            def faery_dat():
                with fe.dat.Decoder(path, None, None) as d:
                    a = np.concatenate(list(d))
                return _as_ours(a["t"], a["x"], a["y"], np.minimum(a["payload"], 1))

            found["faery"] = faery_dat
        else:

            def faery_evt():
                with fe.evt.Decoder(path, None, None) as d:
                    a = np.concatenate([q["events"] for q in d if "events" in q])
                return _as_ours(a["t"], a["x"], a["y"], a["on"])

            found["faery"] = faery_evt
    except ImportError:
        pass
    try:
        import expelliarmus

        wiz = expelliarmus.Wizard(encoding=fmt)

        def expelliarmus_read():
            a = wiz.read(path)
            return _as_ours(a["t"], a["x"], a["y"], a["p"])

        found["expelliarmus"] = expelliarmus_read
    except ImportError:
        pass
    try:
        import evlib

        def evlib_read():
            df = evlib.load_events(str(path)).collect()
            t = df["t"].dt.total_microseconds().to_numpy()
            return _as_ours(t, df["x"].to_numpy(), df["y"].to_numpy(), df["polarity"].to_numpy() > 0)

        found["evlib"] = evlib_read
    except ImportError:
        pass
    return found


def _check(fn, ref) -> tuple[bool, str | None]:
    """(returns exactly ``ref``, why not); a peer that fails on the file is reported, not fatal."""
    try:
        got = fn()
    except Exception as e:  # noqa: BLE001
        return False, f"raised {type(e).__name__}: {str(e)[:120]}"
    if len(got) != len(ref):
        return False, f"{len(got)} events instead of {len(ref)}"
    if not np.array_equal(got, ref):
        diff = [f for f in ("t", "x", "y", "p") if not np.array_equal(got[f], ref[f])]
        same_set = np.array_equal(np.sort(got, order=["t", "y", "x", "p"]), np.sort(ref, order=["t", "y", "x", "p"]))
        return False, f"fields {diff} differ" + (" (same events, other order)" if same_set else "")
    return True, None


def bench(n_events: int, repeats: int) -> dict:
    import faery.extension as fe

    events = camera_like(n_events)
    n = len(events)
    fev = np.zeros(n, [("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    fev["t"], fev["x"], fev["y"], fev["on"] = events["t"], events["x"], events["y"], events["p"]
    dev = np.zeros(n, [("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("payload", "u1")])
    dev["t"], dev["x"], dev["y"], dev["payload"] = events["t"], events["x"], events["y"], events["p"]
    report: dict = {
        "events": n,
        "duration_us": int(events["t"][-1] - events["t"][0]),
        "geometry": [WIDTH, HEIGHT],
        "native_kernel": NATIVE,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "formats": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for fmt in ("evt3", "evt2"):
            files[(fmt, "faery")] = Path(tmp, f"faery_{fmt}.raw")
            with fe.evt.Encoder(files[(fmt, "faery")], fmt, False, (WIDTH, HEIGHT), True) as enc:
                enc.write({"events": fev})
        files[("dat", "faery")] = Path(tmp, "faery.dat")
        with fe.dat.Encoder(files[("dat", "faery")], "dat2", "cd", False, (WIDTH, HEIGHT)) as enc:
            enc.write(dev)
        writers = {"evt3": evt3.write_evt3, "evt2": evt2.write_evt2, "dat": dat.write_dat}
        for fmt, write in writers.items():
            files[(fmt, "edgesnn")] = Path(tmp, f"edgesnn_{fmt}.{'dat' if fmt == 'dat' else 'raw'}")
            t0 = time.perf_counter()
            write(files[(fmt, "edgesnn")], events, geometry=(WIDTH, HEIGHT))
            report.setdefault("write_mevs", {})[fmt] = round(n / (time.perf_counter() - t0) / 1e6, 1)
        for (fmt, writer), path in files.items():
            ours = {"edgesnn": lambda p=path: open_events(p).read_all()}
            ours["edgesnn_numpy"] = lambda p=path, f=fmt: _OPEN[f](p, native=False).read_all()
            decoders = {**ours, **peers(fmt, path)}
            entry: dict = {"file_bytes": path.stat().st_size, "bytes_per_event": round(path.stat().st_size / n, 2)}
            timed = {}
            for name, fn in decoders.items():
                ok, why = _check(fn, events)  # also the warm-up call
                entry[name] = {"correct": ok}
                if why:
                    entry[name]["problem"] = why
                if ok or not why.startswith("raised"):  # timed if it decodes at all; only correct ones compete
                    timed[name] = fn
            for name, rates in round_robin(timed, n, repeats).items():
                entry[name].update(rates)
            peer_rates = [v["median"] for k, v in entry.items() if isinstance(v, dict) and k in _PEERS and v["correct"]]
            if peer_rates:
                entry["fastest_peer_mevs"] = max(peer_rates)
                entry["ours_over_fastest_peer"] = round(entry["edgesnn"]["median"] / max(peer_rates), 2)
            report["formats"][f"{fmt} written by {writer}"] = entry
    evt3_rate = report["formats"]["evt3 written by faery"]["edgesnn"]["median"]
    report["targets"] = {
        "evt3_at_least_50_mevs": evt3_rate >= TARGET_EVT3_MEVS,
        "at_least_fastest_peer": {
            k: v.get("ours_over_fastest_peer", float("inf")) >= 1.0 for k, v in report["formats"].items()
        },
    }
    return report


_OPEN = {"evt3": evt3.open_evt3, "evt2": evt2.open_evt2, "dat": dat.open_dat}
_PEERS = ("faery", "expelliarmus", "evlib")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats: at least 5 (the median needs them)")
    print(json.dumps(bench(args.events, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
