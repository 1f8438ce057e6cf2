"""Real camera recordings for the benchmarks: the files faery 0.7.1 ships in its source archive on PyPI.

The archive comes from the package registry's simple index (sha256 checked) into a cache folder,
once; files are extracted from it on demand. Nothing is committed to the repository::

    path = fetch("evt3.raw", Path.home() / ".cache" / "edgesnn-bench")
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/simple/faery/"
ARCHIVE = "faery-0.7.1.tar.gz"
SHA256 = "15ddf16d927d6b7c88c1e8b9adb72fe17dc17d08f6ac81f7404ec4d5e9528e56"
DEFAULT_CACHE = Path.home() / ".cache" / "edgesnn-bench"

#: Format -> (file in the archive's tests/data, what it is).
RECORDINGS = {
    "evt3": ("evt3.raw", "Prophesee EVK4 (IMX636), EVT 3.0"),
    "evt2": ("evt2.raw", "Prophesee Gen3, EVT 2.0"),
    "dat": ("gen4.dat", "DAT v2 twin of the EVK4 recording"),
    "aedat4": ("davis346.aedat4", "iniVation DAVIS346, AEDAT 4"),
}


def fetch_archive(cache: Path = DEFAULT_CACHE) -> Path:
    """faery's source archive in ``cache``, downloaded from the registry when absent or corrupt."""
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / ARCHIVE
    if not archive.exists() or hashlib.sha256(archive.read_bytes()).hexdigest() != SHA256:
        page = urllib.request.urlopen(INDEX, timeout=60).read().decode()
        found = re.search(rf'href="([^"]*{re.escape(ARCHIVE)})[^"]*"', page)
        if found is None:
            raise SystemExit(f"{INDEX}: no link to {ARCHIVE}")
        data = urllib.request.urlopen(found.group(1), timeout=300).read()
        if hashlib.sha256(data).hexdigest() != SHA256:
            raise SystemExit(f"{found.group(1)}: sha256 differs from {SHA256}")
        tmp = archive.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(archive)
    return archive


def fetch(name: str, cache: Path = DEFAULT_CACHE) -> Path:
    """The file ``tests/data/<name>`` of faery's source archive, extracted into ``cache``."""
    target = cache / name
    if target.exists():
        return target
    with tarfile.open(fetch_archive(cache)) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(f"/tests/data/{name}")), None)
        if member is None:
            raise SystemExit(f"{ARCHIVE} has no tests/data/{name}")
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(tar.extractfile(member).read())
        tmp.replace(target)
    return target
