"""Event-file decoding speed: million events per second, one thread, on real recordings and a synthetic one.

Real: the camera recordings faery 0.7.1 ships in its source archive (``tests/data``: an EVK4 IMX636
EVT 3.0 file, a Gen3 EVT 2.0 file, the DAT v2 twin of the EVK4 file), fetched once from the package
registry into ``--cache`` (tools/bench/recordings.py). Synthetic: one camera-like recording (edges
crossing a 1280x720 sensor: events come in short runs of neighbouring pixels on one row at one
microsecond, around a moving object, at a rate swinging between about 1 and 10 Mev/s), written with
faery as EVT 2.0, EVT 3.0 and DAT v2 and with edgesnn's writers.

Each file is decoded by edgesnn (``open_events(...).read_all()``: the C kernel, and the numpy fallback
for reference) and by faery, expelliarmus and evlib, whichever are installed, each peer timed on its
own read as its users call it (expelliarmus ``Wizard.read``, faery's decoder joined into one array,
evlib ``load_events().collect()``); the conversion of the peer's arrays into edgesnn's EVENT_DTYPE is
timed separately (``conversion_to_edgesnn_mevs``). Every decoder's events are compared with edgesnn's
(``correct``, and what differs). Reads are taken round-robin across decoders so a change in machine
load hits all alike; the figures are the median (and min, max) Mev/s over the repeats, and ours over
the fastest peer and over expelliarmus. Prints one JSON document.

    python tools/bench/events.py [--recordings real|synthetic|both] [--events 4000000] [--repeats 5]
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
from tools.bench import recordings  # noqa: E402

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


def peers(fmt: str, path: Path) -> dict[str, tuple[Callable[[], object], Callable[[object], np.ndarray]]]:
    """Decoders of other projects for this file that are installed: (their own read, its conversion to ours).

    The read is what a user of that library calls to get the whole file as arrays; the conversion
    into edgesnn's EVENT_DTYPE is timed apart from it, so the read is the peer's own figure.
    """
    found: dict[str, tuple[Callable[[], object], Callable[[object], np.ndarray]]] = {}
    try:
        import faery.extension as fe

        if fmt == "dat":

            def faery_dat():
                with fe.dat.Decoder(path, None, None) as d:
                    return np.concatenate(list(d))

            found["faery"] = (faery_dat, lambda a: _as_ours(a["t"], a["x"], a["y"], np.minimum(a["payload"], 1)))
        else:

            def faery_evt():
                with fe.evt.Decoder(path, None, None) as d:
                    return np.concatenate([q["events"] for q in d if "events" in q])

            found["faery"] = (faery_evt, lambda a: _as_ours(a["t"], a["x"], a["y"], a["on"]))
    except ImportError:
        pass
    try:
        import expelliarmus

        wiz = expelliarmus.Wizard(encoding=fmt)
        found["expelliarmus"] = (lambda: wiz.read(path), lambda a: _as_ours(a["t"], a["x"], a["y"], a["p"]))
    except ImportError:
        pass
    try:
        import evlib

        def evlib_convert(df):
            t = df["t"].dt.total_microseconds().to_numpy()
            return _as_ours(t, df["x"].to_numpy(), df["y"].to_numpy(), df["polarity"].to_numpy() > 0)

        found["evlib"] = (lambda: evlib.load_events(str(path)).collect(), evlib_convert)
    except ImportError:
        pass
    return found


def compare(path: Path, fmt: str, ref: np.ndarray, repeats: int) -> dict:
    """edgesnn's decoders and the peers' own reads of one file, interleaved; conversions timed apart."""
    n = len(ref)
    decoders: dict[str, Callable[[], object]] = {
        "edgesnn": lambda: open_events(path).read_all(),
        "edgesnn_numpy": lambda: _OPEN[fmt](path, native=False).read_all(),
    }
    entry: dict = {"file_bytes": path.stat().st_size, "bytes_per_event": round(path.stat().st_size / n, 2)}
    converts: dict[str, Callable[[], object]] = {}
    for name, fn in decoders.items():
        ok, why = _check(fn, ref)
        entry[name] = {"correct": ok, **({"problem": why} if why else {})}
    timed = dict(decoders)
    for name, (read, convert) in peers(fmt, path).items():
        try:
            raw = read()  # also the warm-up call
        except Exception as e:  # noqa: BLE001 - a peer that cannot read the file is reported, not fatal
            entry[name] = {"correct": False, "problem": f"raised {type(e).__name__}: {str(e)[:120]}"}
            continue
        ok, why = _check(lambda raw=raw, convert=convert: convert(raw), ref)
        entry[name] = {"correct": ok, **({"problem": why} if why else {})}
        timed[name] = read
        converts[name] = lambda raw=raw, convert=convert: convert(raw)
    for name, rates in round_robin(timed, n, repeats).items():
        entry[name].update(rates)
    for name, rates in round_robin(converts, n, repeats).items():
        entry[name]["conversion_to_edgesnn_mevs"] = rates["median"]
    # the reference: every peer's own read, whatever its agreement (listed beside it)
    peer_rates = {k: v["median"] for k, v in entry.items() if isinstance(v, dict) and k in _PEERS and "median" in v}
    if peer_rates:
        best = max(peer_rates, key=peer_rates.get)
        entry["fastest_peer"] = best
        entry["fastest_peer_mevs"] = peer_rates[best]
        entry["ours_over_fastest_peer"] = round(entry["edgesnn"]["median"] / peer_rates[best], 2)
        if "expelliarmus" in peer_rates:
            entry["ours_over_expelliarmus"] = round(entry["edgesnn"]["median"] / peer_rates["expelliarmus"], 2)
    return entry


def bench_real(cache: Path, repeats: int) -> dict:
    """The real recordings of faery's source archive, each decoded by everyone (see compare)."""
    report: dict = {"source": f"{recordings.ARCHIVE} tests/data (PyPI)", "formats": {}}
    for fmt in ("evt3", "evt2", "dat"):
        name, what = recordings.RECORDINGS[fmt]
        path = recordings.fetch(name, cache)
        ref = open_events(path).read_all()
        entry = {
            "file": name,
            "camera": what,
            "events": len(ref),
            "duration_s": round(float(ref["t"][-1] - ref["t"][0]) / 1e6, 2),
            **compare(path, fmt, ref, repeats),
        }
        report["formats"][fmt] = entry
    evt3 = report["formats"]["evt3"]
    report["targets"] = {
        "evt3_at_least_50_mevs": evt3["edgesnn"]["median"] >= TARGET_EVT3_MEVS,
        "evt3_at_least_1.5x_expelliarmus": evt3.get("ours_over_expelliarmus", 0) >= 1.5,
        "evt2_dat_at_least_expelliarmus": {f: report["formats"][f].get("ours_over_expelliarmus", 0) >= 1.0
                                           for f in ("evt2", "dat")},
    }  # fmt: skip
    return report


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
    """The synthetic recording, written by faery and by edgesnn in each format, decoded by everyone."""
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
            report["formats"][f"{fmt} written by {writer}"] = compare(path, fmt, events, repeats)
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
    ap.add_argument("--events", type=int, default=4_000_000, help="events of the synthetic recording")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--recordings", choices=("real", "synthetic", "both"), default="both")
    ap.add_argument("--cache", type=Path, default=recordings.DEFAULT_CACHE, help="where faery's archive is kept")
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats: at least 5 (the median needs them)")
    report: dict = {"native_kernel": NATIVE, "python": platform.python_version(), "machine": platform.machine()}
    if args.recordings in ("real", "both"):
        report["real"] = bench_real(args.cache, args.repeats)
    if args.recordings in ("synthetic", "both"):
        report["synthetic"] = bench(args.events, args.repeats)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
