"""The streaming detector end to end at a small geometry: bundle round trip, corruption, windows, state."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("jax")

from edgesnn.detect import BOX_DTYPE, load_detector, write_detector  # noqa: E402
from edgesnn.errors import BundleFormatError, BundleIntegrityError, BundleValidationError, InputError  # noqa: E402
from edgesnn.events import make_events  # noqa: E402
from tools.train_detect.arch import ArchSpec  # noqa: E402
from tools.train_detect.export import build_detector  # noqa: E402
from tools.train_detect.model import init_params  # noqa: E402

SPEC = ArchSpec(width=64, height=48, n_bins=4, bin_us=5000)


@pytest.fixture(scope="module")
def detector():
    return build_detector(init_params(SPEC, seed=3), SPEC, score_threshold=0.0, max_detections=20)


def _events(n: int, t_end_us: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, t_end_us, n))
    return make_events(x=rng.integers(0, 64, n), y=rng.integers(0, 48, n), p=rng.integers(0, 2, n), t=t)


def _bundle_bytes(detector) -> bytes:
    buf = io.BytesIO()
    write_detector(detector, buf)
    return buf.getvalue()


def test_bundle_round_trip_gives_the_same_boxes(detector, tmp_path):
    path = tmp_path / "det.esnn"
    write_detector(detector, path)
    loaded = load_detector(path)
    assert loaded.ann == detector.ann and loaded.config == detector.config
    ev = _events(3000, 60_000)
    a = list(detector.session(start_us=0).run([ev]))
    b = list(loaded.session(start_us=0).run([ev]))
    assert len(a) == len(b) == 3  # two full 20 ms windows and the partial last one
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_windows_are_stamped_at_their_end_and_empty_windows_still_count(detector):
    s = detector.session(start_us=0)
    ev = _events(500, 20_000)
    late = _events(10, 5000, seed=1)
    late["t"] += 100_000
    out = s.push(ev) + s.push(late) + s.finish()
    assert [int(b["t_us"][0]) if len(b) else None for b in out][:5] == [20_000, 40_000, 60_000, 80_000, 100_000]
    assert all(b.dtype == BOX_DTYPE for b in out)
    assert out[0]["score"].min() >= 0 and len(out[0]) <= 20


def test_chunking_does_not_change_the_result(detector):
    ev = _events(4000, 80_000)
    whole = list(detector.session(start_us=0).run([ev]))
    pieces = list(detector.session(start_us=0).run(np.array_split(ev, 37)))
    for x, y in zip(whole, pieces, strict=True):
        np.testing.assert_array_equal(x, y)


def test_state_carries_across_windows_and_reset_forgets_it(detector):
    ev = _events(3000, 20_000)
    s = detector.session(start_us=0)
    first = s.detect_window(ev, 0)
    second = s.detect_window(ev, 0)  # same events, membranes no longer at rest
    assert not np.array_equal(first["score"], second["score"])
    s.reset()
    np.testing.assert_array_equal(s.detect_window(ev, 0), first)


def test_out_of_order_chunk_is_an_input_error(detector):
    s = detector.session(start_us=0)
    s.push(_events(100, 10_000))
    with pytest.raises(InputError):
        s.push(_events(10, 1000))


def test_corrupt_attachment_names_the_member(detector):
    data = bytearray(_bundle_bytes(detector))
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = zf.getinfo("attachments/detect.onnx")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.file_size // 2] ^= 0xFF
    # the zip's CRC catches it first (BundleFormatError); either way the member is named
    with pytest.raises((BundleFormatError, BundleIntegrityError)) as err:
        load_detector(io.BytesIO(bytes(data)))
    assert err.value.path == "attachments/detect.onnx"


def test_truncated_bundle_and_plain_model(detector, tmp_path):
    data = _bundle_bytes(detector)
    with pytest.raises(BundleFormatError):
        load_detector(io.BytesIO(data[: len(data) // 2]))
    from edgesnn.bundle import write_bundle

    plain = tmp_path / "plain.esnn"
    write_bundle(detector.front, plain)
    with pytest.raises(BundleValidationError, match="not a detector") as err:
        load_detector(plain)
    assert err.value.path == "graph/metadata/detect"


def test_missing_attachment_is_a_format_error(detector, tmp_path):
    from edgesnn.bundle import write_bundle
    from edgesnn.graph import Graph

    g = detector.front.graph
    meta = {**g.metadata, "detect": detector.config.to_dict()}
    front = type(detector.front)(Graph(g.nodes, g.edges, meta), detector.front.dt_s, detector.front.method)
    path = tmp_path / "noann.esnn"
    write_bundle(front, path)
    with pytest.raises(BundleFormatError, match="no such attachment") as err:
        load_detector(path)
    assert err.value.path == "attachments/detect.onnx"


def test_bad_settings_name_the_field(detector, tmp_path):
    from edgesnn.bundle import write_bundle
    from edgesnn.graph import Graph

    g = detector.front.graph
    meta = {**g.metadata, "detect": {**detector.config.to_dict(), "iou_threshold": 3}}
    front = type(detector.front)(Graph(g.nodes, g.edges, meta), detector.front.dt_s, detector.front.method)
    path = tmp_path / "bad.esnn"
    write_bundle(front, path, attachments={"detect.onnx": detector.ann})
    with pytest.raises(BundleValidationError) as err:
        load_detector(path)
    assert err.value.path == "graph/metadata/detect/iou_threshold"


def test_mismatched_parts_are_model_errors(detector):
    import dataclasses

    from edgesnn.detect import Detector
    from edgesnn.errors import ModelError
    from tools.train_detect.export import ann_onnx, front_model

    other = dataclasses.replace(SPEC, front_channels=(8, 16, 8))
    with pytest.raises(ModelError) as err:
        Detector(detector.front, ann_onnx(init_params(other), other), detector.config)
    assert err.value.path == "ann/input"
    with pytest.raises(ModelError) as err:
        Detector(detector.front, detector.ann, dataclasses.replace(detector.config, classes=("a", "b", "c")))
    assert err.value.path == "ann/output"
    wide = dataclasses.replace(SPEC, width=96)
    with pytest.raises(ModelError) as err:
        Detector(front_model(init_params(wide), wide), detector.ann, detector.config)
    assert err.value.path == "front/inputs"
