"""``edgesnn events info|convert|render``: inspect, convert and draw event files, chunk by chunk.

:func:`add_events_commands` adds the ``events`` command to the ``edgesnn`` parser; each
subcommand sets ``func(args) -> exit code`` and raises edgesnn errors for user mistakes, which
``edgesnn.cli.main`` prints as one line. Every command streams the file through
``open_events(...).chunks()``, so memory does not grow with the file, with two exceptions:
``render`` to GIF keeps one palette byte per pixel per frame (capped by ``--max-frames``), and
``convert`` to EVT2/EVT3/DAT gathers the events first, because those writers take one array.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edgesnn.errors import EventFileError, MissingDependencyError, OptionError
from edgesnn.events._dtype import empty_events
from edgesnn.units import parse_duration_s

log = logging.getLogger("edgesnn.events.cli")

#: Output format -> "module:function" writer, taking (path, events or iterable of chunks, geometry=).
WRITERS: dict[str, str] = {
    "evt2": "edgesnn.events.evt2:write_evt2",
    "evt3": "edgesnn.events.evt3:write_evt3",
    "dat": "edgesnn.events.dat:write_dat",
    "npz": "edgesnn.events.arrays:write_npz",
}
#: Writers that take an iterable of chunks and keep memory bounded. The EVT2, EVT3 and DAT writers
#: take one array today, so converting to them holds the events in memory until they stream too.
_STREAMING_WRITERS = frozenset({"npz"})
#: What an input event file may be (the format is detected from its content).
EVENT_FILE_HELP = "event file: .raw (EVT2/2.1/3), .dat, .aedat4, .npy/.npz, .h5, .csv"
#: Output extension -> format; ``.raw`` is EVT 3.0 unless ``--format evt2``.
_OUT_EXTENSIONS = {".raw": "evt3", ".dat": "dat", ".npz": "npz"}


# -- info ------------------------------------------------------------------------------------
def _open(args: argparse.Namespace, path: str):
    from edgesnn.events.io import open_events

    if args.input_format is None:
        _check_array_file(path)
    return open_events(path, format=args.input_format, lenient=args.lenient, geometry=args.geometry)


def _check_array_file(path: str) -> None:
    """A .npy/.npz that is not one is an EventFileError naming it and what it holds (not numpy's advice on pickles)."""
    from edgesnn.cli import describe_head, file_head

    ext = Path(path).suffix.lower()
    want = {".npy": (b"\x93NUMPY",), ".npz": (b"PK\x03\x04", b"PK\x05\x06")}.get(ext)
    if want is not None:
        head = file_head(path)
        if not head.startswith(want):
            raise EventFileError(f"expected a numpy {ext} file of events, found {describe_head(head)}", path=path)


def stream_summary(chunks: Iterable[np.ndarray]) -> dict:
    """Count, first/last time and ON count of a chunked stream, in one pass."""
    count = on = 0
    t_first = t_last = None
    for chunk in chunks:
        if not len(chunk):
            continue
        if t_first is None:
            t_first = int(chunk["t"][0])
        t_last = int(chunk["t"][-1])
        count += len(chunk)
        on += int(np.count_nonzero(chunk["p"] > 0))
    return {"count": count, "t_first_us": t_first, "t_last_us": t_last, "on": on}


def cmd_info(args: argparse.Namespace) -> int:
    """Print format, geometry, event count, duration and rate of an event file."""
    with _open(args, args.file) as reader:
        summary = stream_summary(reader.chunks())
        info = {
            "file": args.file,
            "format": reader.format,
            "geometry": list(reader.geometry) if reader.geometry else None,
            **summary,
            "skipped": dict(reader.skipped),
        }
    duration_us = (summary["t_last_us"] - summary["t_first_us"]) if summary["count"] else 0
    info["duration_s"] = duration_us * 1e-6
    info["rate_ev_per_s"] = summary["count"] / (duration_us * 1e-6) if duration_us > 0 else None
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    geometry = "x".join(map(str, info["geometry"])) if info["geometry"] else "unknown"
    print(f"{args.file}: {info['format']}, {geometry} pixels")
    print(f"  events:   {info['count']:,} ({info['on']:,} ON, {info['count'] - info['on']:,} OFF)")
    if summary["count"]:
        print(f"  time:     {summary['t_first_us']} .. {summary['t_last_us']} us ({info['duration_s']:.6g} s)")
    if info["rate_ev_per_s"] is not None:
        print(f"  rate:     {info['rate_ev_per_s']:,.0f} ev/s ({info['rate_ev_per_s'] / 1e6:.4g} Mev/s)")
    if info["skipped"]:
        print("  skipped:  " + ", ".join(f"{k} {v}" for k, v in sorted(info["skipped"].items())))
    return 0


# -- convert ---------------------------------------------------------------------------------
def output_format(path: str, fmt: str | None) -> str:
    """The writer for ``path``: ``fmt`` when given, else from the extension."""
    if fmt is not None:
        if fmt not in WRITERS:
            raise OptionError(f"expected one of {', '.join(WRITERS)}, got {fmt!r}", path="--format")
        return fmt
    ext = Path(path).suffix.lower()
    if ext not in _OUT_EXTENSIONS:
        raise OptionError(
            f"cannot tell the output format from {ext or 'no extension'!r}; use .raw (EVT 3.0), .dat or .npz, "
            "or --format evt2|evt3|dat|npz",
            path=path,
        )
    return _OUT_EXTENSIONS[ext]


def _writer(fmt: str):
    module, func = WRITERS[fmt].split(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise OptionError(f"writing {fmt} is not available in this build ({exc})", path="--format") from exc


def progress(chunks: Iterable[np.ndarray], *, enabled: bool, desc: str) -> Iterator[np.ndarray]:
    """Yield ``chunks`` unchanged, advancing a tqdm bar (in events) when ``enabled`` and tqdm is present."""
    bar = None
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            # the bar is a nicety: without tqdm the conversion runs the same, silently
            log.debug("tqdm is not installed; no progress bar")
        else:
            # on a terminal the bar clears itself; in a log its last state stays as the record
            bar = tqdm(desc=desc, unit="ev", unit_scale=True, file=sys.stderr, leave=not sys.stderr.isatty())
    try:
        for chunk in chunks:
            if bar is not None:
                bar.update(len(chunk))
            yield chunk
    finally:
        if bar is not None:
            bar.close()


def show_progress(args: argparse.Namespace) -> bool:
    """A bar when asked (``--progress``), else on a terminal unless ``--quiet``."""
    if getattr(args, "progress", False):
        return True
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def cmd_convert(args: argparse.Namespace) -> int:
    """Re-encode an event file chunk by chunk: any readable format -> EVT2, EVT3, DAT or npz."""
    from edgesnn.cli import output_arg

    args.output = output_arg(args)
    fmt = output_format(args.output, args.format)
    if Path(args.output).resolve() == Path(args.input).resolve():
        raise OptionError("output would overwrite the input", path=args.output)
    write = _writer(fmt)
    counted = {"n": 0}

    def counting(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for chunk in chunks:
            counted["n"] += len(chunk)
            yield chunk

    with _open(args, args.input) as reader:
        geometry = reader.geometry
        chunks = counting(progress(reader.chunks(), enabled=show_progress(args), desc=Path(args.input).name))
        if fmt in _STREAMING_WRITERS:
            write(args.output, chunks, geometry=geometry)
        else:
            parts = list(chunks)
            events = np.concatenate(parts) if parts else empty_events()
            write(args.output, events, geometry=geometry)
    if not getattr(args, "quiet", False):
        print(f"wrote {args.output} ({fmt}, {counted['n']:,} events)")
    return 0


# -- render ----------------------------------------------------------------------------------
def parse_color(text: str, *, name: str) -> tuple[int, int, int]:
    """'#rrggbb' or 'rrggbb' as an (r, g, b) tuple."""
    s = text.strip().lstrip("#")
    if len(s) != 6:
        raise OptionError(f"expected a colour like #ff8000, got {text!r}", path=name)
    try:
        return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)
    except ValueError:
        raise OptionError(f"expected a colour like #ff8000, got {text!r}", path=name) from None


def window_frames(
    chunks: Iterable[np.ndarray], *, width: int, height: int, window_us: int, start_us: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(window start, on - off count per pixel)`` for consecutive windows of a chunked stream.

    Windows are ``[start + k*window, start + (k+1)*window)``, ``start`` defaulting to the first
    event's time; windows without events are yielded too (as zeros), so time runs evenly.
    Memory: one (H, W) accumulator, whatever the stream's length.
    """
    acc = np.zeros(height * width, dtype=np.int64)
    current = None  # index of the window being accumulated
    origin = start_us
    for chunk in chunks:
        if not len(chunk):
            continue
        if origin is None:
            origin = int(chunk["t"][0])
        chunk = chunk[chunk["t"] >= origin]
        if not len(chunk):
            continue
        _check_inside(chunk, width, height)
        k = (chunk["t"] - origin) // window_us
        bounds = np.flatnonzero(np.diff(k)) + 1
        for piece, kk in zip(np.split(chunk, bounds), np.split(k, bounds), strict=True):
            w = int(kk[0])
            if current is None:
                current = w
            while current < w:
                yield origin + current * window_us, acc.reshape(height, width)
                acc = np.zeros_like(acc)
                current += 1
            pix = piece["y"].astype(np.int64) * width + piece["x"]
            sign = np.where(piece["p"] > 0, 1, -1)
            acc += np.bincount(pix, weights=sign, minlength=height * width).astype(np.int64)
    if current is not None:
        yield origin + current * window_us, acc.reshape(height, width)


def _check_inside(chunk: np.ndarray, width: int, height: int) -> None:
    from edgesnn.events.functional._repr_checks import check_events

    check_events(chunk, width, height)


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError(
            "rendering PNG/GIF needs Pillow: pip install 'edgesnn[events]'", path="render"
        ) from exc
    return Image


def _to_image(Image, net: np.ndarray, palette: list[int]):
    """A palette image: index 0 background, 1 net ON, 2 net OFF (one byte per pixel, GIF-ready)."""
    index = np.zeros(net.shape, dtype=np.uint8)
    index[net > 0] = 1
    index[net < 0] = 2
    img = Image.frombytes("P", (net.shape[1], net.shape[0]), index.tobytes())
    img.putpalette(palette)
    return img


def cmd_render(args: argparse.Namespace) -> int:
    """Draw accumulated event frames (ON/OFF colours) to a PNG (first window) or an animated GIF."""
    out = Path(args.out)
    kind = out.suffix.lower()
    if kind not in (".png", ".gif"):
        raise OptionError(f"expected a .png or .gif output, got {out.name!r}", path="-o/--out")
    window_us = max(1, round(parse_duration_s(args.window, name="--window") * 1e6))
    palette = [
        *parse_color(args.background, name="--background"),
        *parse_color(args.on_color, name="--on-color"),
        *parse_color(args.off_color, name="--off-color"),
    ]
    if args.max_frames < 1:
        raise OptionError(f"must be at least 1, got {args.max_frames}", path="--max-frames")
    if not args.speed > 0:
        raise OptionError(f"must be positive, got {args.speed}", path="--speed")
    Image = _pil()
    start_us = None if args.start is None else round(parse_duration_s(args.start, name="--start") * 1e6)
    with _open(args, args.file) as reader:
        if reader.geometry is None:
            raise OptionError("the file records no sensor geometry; pass --geometry WxH", path=args.file)
        width, height = reader.geometry
        if start_us is not None:
            reader.seek_time(start_us)
        frames = window_frames(reader.chunks(), width=width, height=height, window_us=window_us, start_us=start_us)
        images = []
        cut_at = None  # start (us) of the first window left out by --max-frames
        for t_us, net in frames:
            if kind == ".gif" and len(images) >= args.max_frames:
                cut_at = t_us
                break
            images.append(_to_image(Image, net, palette))
            if kind == ".png":
                break
    if cut_at is not None:
        log.warning("stopped at --max-frames %d frames; the recording goes on from t = %d us", args.max_frames, cut_at)
    if not images:
        raise OptionError("no events to render", path=args.file)
    if kind == ".png":
        images[0].save(out)
    else:
        duration_ms = max(20, round(window_us / 1000 / args.speed))
        images[0].save(out, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    if not getattr(args, "quiet", False):
        print(f"wrote {out} ({len(images)} frame{'s' if len(images) != 1 else ''} of {window_us} us)")
    return 0


# -- parser ----------------------------------------------------------------------------------
def _geometry_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    return w, h


def _add_input_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-format", help="input format, when detection fails (evt2, evt21, evt3, dat, aedat4, ...)")
    p.add_argument("--lenient", action="store_true", help="skip and count damaged words instead of failing")
    p.add_argument("--geometry", type=_geometry_arg, help="sensor WIDTHxHEIGHT when the file records none")
    # SUPPRESS: without the flag, keep the value of `edgesnn --quiet` rather than overwrite it
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar or summary")


def add_events_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``events info|convert|render`` to an ``add_subparsers()`` object; returns the ``events`` parser."""
    events = subparsers.add_parser("events", help="inspect, convert and render event-camera files")
    sub = events.add_subparsers(dest="events_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("info", help="format, geometry, event count, duration and rate of an event file")
    p.add_argument("file", help=EVENT_FILE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_input_flags(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert an event file to EVT2, EVT3 (.raw), DAT or npz, chunk by chunk")
    p.add_argument("input", help=EVENT_FILE_HELP)
    p.add_argument("output", nargs="?", help="out.raw (EVT 3.0 unless --format evt2), out.dat or out.npz")
    p.add_argument("-o", "--out", metavar="FILE", help="the output, instead of the second argument")
    p.add_argument("--format", choices=sorted(WRITERS), help="output format (default: from the extension)")
    _add_input_flags(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("render", help="draw accumulated event frames to a PNG or an animated GIF")
    p.add_argument("file", help=EVENT_FILE_HELP)
    p.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="frame.png (first window) or anim.gif (one frame per window)")  # fmt: skip
    p.add_argument("--window", default="33ms", help="accumulation window, with a unit: 10ms, 500us")
    p.add_argument("--start", help="time to start from, with a unit: 1.5s (default: the first event)")
    p.add_argument("--max-frames", type=int, default=300, help="at most this many GIF frames (a warning says when"
                   " the recording goes on)")  # fmt: skip
    p.add_argument("--speed", type=float, default=1.0, help="GIF playback speed relative to real time")
    p.add_argument("--on-color", default="#ffffff", help="colour of pixels with more ON events")
    p.add_argument("--off-color", default="#3c78ff", help="colour of pixels with more OFF events")
    p.add_argument("--background", default="#000000", help="colour of pixels without net events")
    _add_input_flags(p)
    p.set_defaults(func=cmd_render)
    return events
