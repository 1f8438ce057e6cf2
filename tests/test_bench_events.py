"""The decoding benchmark's comparison (tools/bench/events.py): every decoder checked, peers' reads timed apart
from their conversion. Timings are not asserted; the report's shape and correctness flags are."""

import pytest

from edgesnn.events import evt3
from tools.bench import recordings
from tools.bench.events import camera_like, compare


def test_a_file_is_decoded_by_everyone_and_each_peer_is_checked_and_timed_on_its_own_read(tmp_path):
    pytest.importorskip("faery")
    events = camera_like(20_000)
    path = tmp_path / "small.raw"
    evt3.write_evt3(path, events, geometry=(1280, 720))
    entry = compare(path, "evt3", events, repeats=1)
    assert entry["edgesnn"]["correct"] and entry["edgesnn_numpy"]["correct"]
    assert entry["faery"]["correct"], entry["faery"]
    assert entry["faery"]["median"] > 0 and entry["faery"]["conversion_to_edgesnn_mevs"] > 0
    assert "conversion_to_edgesnn_mevs" not in entry["edgesnn"]  # ours returns edgesnn's dtype already
    peers = [k for k in ("faery", "expelliarmus", "evlib") if "median" in entry.get(k, {})]
    assert entry["fastest_peer"] in peers
    assert entry["ours_over_fastest_peer"] == round(entry["edgesnn"]["median"] / entry["fastest_peer_mevs"], 2)


def test_a_cached_recording_is_used_without_the_network(tmp_path, monkeypatch):
    (tmp_path / "evt3.raw").write_bytes(b"% header\n")
    monkeypatch.setattr(recordings.urllib.request, "urlopen", lambda *a, **k: pytest.fail("went to the network"))
    assert recordings.fetch("evt3.raw", tmp_path) == tmp_path / "evt3.raw"
