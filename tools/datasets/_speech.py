"""Speech synthesis with the espeak-ng command-line program (Debian package ``espeak-ng``).

A failure of the program itself is raised as the root :class:`EdgeSNNError` (no leaf of
the hierarchy describes an external synthesiser), naming the command that failed.

espeak-ng is run once per word through :mod:`subprocess`; its WAV output is read from
stdout. Given the same espeak-ng build and the same arguments its output is
byte-identical, which is what makes the dataset reproducible.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess

import numpy as np

from edgesnn.errors import EdgeSNNError, MissingDependencyError, OptionError

PROGRAM = "espeak-ng"
_MISSING = "espeak-ng is not installed; install the Debian package 'espeak-ng' (apt-get install espeak-ng)"


def program_path() -> str:
    """Absolute path of the espeak-ng program; raises MissingDependencyError if it is absent."""
    path = shutil.which(PROGRAM)
    if path is None:
        raise MissingDependencyError(_MISSING)
    return path


@functools.cache
def version() -> str:
    """espeak-ng's version line (recorded in the dataset, since other builds synthesise other audio)."""
    out = subprocess.run([program_path(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split("Data at:")[0].strip()


@functools.cache
def installed_variants() -> frozenset[str]:
    """Names of the voice variants this espeak-ng build has (the part after '+' in '-v en+m3')."""
    out = subprocess.run([program_path(), "--voices=variant"], capture_output=True, text=True, check=True)
    names = set()
    for line in out.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            names.add(fields[4][3:])
    return frozenset(names)


@functools.cache
def installed_languages() -> frozenset[str]:
    """Language voice names this espeak-ng build has (the part before '+')."""
    out = subprocess.run([program_path(), "--voices"], capture_output=True, text=True, check=True)
    return frozenset(line.split()[1] for line in out.stdout.splitlines()[1:] if len(line.split()) >= 2)


def check_voices(voices: list[str]) -> None:
    """Raise OptionError naming every voice whose language or variant this espeak-ng lacks.

    espeak-ng silently falls back to a default variant when one is unknown, which would
    quietly merge speakers; hence the explicit check.
    """
    languages, variants = installed_languages(), installed_variants()
    bad = []
    for voice in voices:
        language, _, variant = voice.partition("+")
        if language not in languages or (variant and variant not in variants):
            bad.append(voice)
    if bad:
        raise OptionError(f"voices not available in {version()}: {', '.join(sorted(bad))}", path="voices")


def parse_wav(data: bytes, *, source: str) -> tuple[np.ndarray, int]:
    """Decode espeak-ng's 16-bit mono PCM WAV to float64 samples in [-1, 1] and the sample rate.

    espeak-ng streams to stdout with placeholder chunk sizes, so the data chunk is read
    to the end of the bytes instead of trusting its length field.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EdgeSNNError("espeak-ng did not produce a RIFF/WAVE stream", path=source)
    pos, rate = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            if (fmt, channels, bits) != (1, 1, 16):
                raise EdgeSNNError(
                    f"expected 16-bit mono PCM, got format {fmt}, {channels} channels, {bits} bits", path=source
                )
        elif chunk == b"data":
            if rate is None:
                raise EdgeSNNError("WAV data chunk before its fmt chunk", path=source)
            pcm = data[body : len(data) - (len(data) - body) % 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0, rate
        pos = body + size + (size % 2)
    raise EdgeSNNError("WAV stream has no data chunk", path=source)


def synthesize(word: str, *, voice: str, speed_wpm: int, pitch: int) -> tuple[np.ndarray, int]:
    """Speak ``word`` with an espeak-ng ``voice`` at ``speed_wpm`` words/min and ``pitch`` (0-99).

    Returns float64 samples in [-1, 1] and the sample rate in Hz.
    """
    if not 80 <= speed_wpm <= 450:
        raise OptionError(f"expected 80..450 words per minute, got {speed_wpm}", path="speed_wpm")
    if not 0 <= pitch <= 99:
        raise OptionError(f"expected pitch 0..99, got {pitch}", path="pitch")
    args = [program_path(), "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "--stdout", word]
    done = subprocess.run(args, capture_output=True, check=False)
    source = f"espeak-ng -v {voice} {word!r}"
    if done.returncode != 0 or done.stderr.strip():
        message = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise EdgeSNNError(f"espeak-ng failed: {message}", path=source)
    return parse_wav(done.stdout, source=source)


def trim_silence(x: np.ndarray, fs: int, *, floor_db: float = -40.0, frame_s: float = 0.005) -> np.ndarray:
    """Cut the leading and trailing frames whose RMS is more than ``floor_db`` below the loudest frame."""
    frame = max(1, int(round(frame_s * fs)))
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    peak = rms.max()
    if peak == 0.0:
        return x[:0]
    loud = np.flatnonzero(rms >= peak * 10.0 ** (floor_db / 20.0))
    return x[loud[0] * frame : (loud[-1] + 1) * frame]
