"""What to generate: the dataset configuration and the per-utterance plan drawn from the seed.

Each split has its own speakers. A speaker is a voice (language + variant, the variant
from the split's own list, see ``_voices``) with a base speaking rate and pitch; the
speaker says every keyword ``utterances_per_keyword`` times, each time with the rate
and pitch jittered and a fresh level, noise, SNR and time shift. All draws come from
``np.random.default_rng([seed, split_index])`` in a fixed order, so the plan depends
only on the seed and the configuration, never on the number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from edgesnn.errors import OptionError
from tools.datasets import _voices
from tools.datasets._cochlea import CochleaConfig
from tools.datasets._mix import NOISE_KINDS

GENERATOR_VERSION = "keywords-1"
SPEAKER_PARAM_NAMES: tuple[str, ...] = ("speed_wpm", "pitch", "gain_db", "snr_db", "shift_s")


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that shapes the dataset except the seed; its hash is stored in every split file."""

    speakers: tuple[int, int, int]  # per split: train, val, test
    keywords: tuple[str, ...] = _voices.KEYWORDS
    utterances_per_keyword: int = 1
    duration_s: float = 1.0
    sample_rate_hz: int = 22050  # espeak-ng's native rate; any other rate is refused, not resampled
    speed_wpm_range: tuple[float, float] = (130.0, 210.0)
    speed_jitter: float = 0.08  # relative, per utterance
    pitch_range: tuple[float, float] = (20.0, 80.0)
    pitch_jitter: float = 5.0  # espeak-ng pitch units (0..99), per utterance
    gain_db_range: tuple[float, float] = (-10.0, 6.0)  # relative to REFERENCE_RMS
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    shift_s_max: float = 0.1  # onset moved by up to this much from centred
    margin_s: float = 0.02  # silence kept at both ends of the window
    babble_words: int = 3
    p_english: float = _voices.P_ENGLISH
    cochlea: CochleaConfig = field(default_factory=CochleaConfig)

    def __post_init__(self) -> None:
        if len(self.speakers) != 3 or min(self.speakers) < 0 or sum(self.speakers) == 0:
            raise OptionError(f"expected 3 speaker counts >= 0, not all 0, got {self.speakers}", path="speakers")
        if not self.keywords or len(set(self.keywords)) != len(self.keywords):
            raise OptionError(f"expected distinct keywords, got {self.keywords}", path="keywords")
        if self.utterances_per_keyword < 1:
            raise OptionError(f"expected >= 1, got {self.utterances_per_keyword}", path="utterances_per_keyword")
        if not 0.0 < self.duration_s or round(self.duration_s * 1e6) != self.duration_s * 1e6:
            raise OptionError(f"expected a positive whole number of µs, got {self.duration_s}", path="duration_s")
        for name in ("speed_wpm_range", "pitch_range", "gain_db_range", "snr_db_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise OptionError(f"expected (low, high) with low <= high, got {(lo, hi)}", path=name)
        lo, hi = self.speed_wpm_range
        if lo * (1 - self.speed_jitter) < 80 or hi * (1 + self.speed_jitter) > 450:
            raise OptionError("speed with jitter must stay within espeak-ng's 80..450 wpm", path="speed_wpm_range")
        lo, hi = self.pitch_range
        if lo - self.pitch_jitter < 0 or hi + self.pitch_jitter > 99:
            raise OptionError("pitch with jitter must stay within espeak-ng's 0..99", path="pitch_range")

    def config_hash(self) -> str:
        """First 16 hex digits of the SHA-256 of this configuration as canonical JSON, with the generator version."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        """Canonical JSON of the configuration and the generator version."""
        return json.dumps({"generator_version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)


@dataclass(frozen=True)
class Utterance:
    """One sample to render; every random choice is already made except the noise waveform."""

    split: str
    index: int  # within the split
    label: int
    voice: str
    speaker: int
    speed_wpm: int
    pitch: int
    gain_db: float
    noise_kind: str
    snr_db: float
    shift_s: float
    babble: tuple[tuple[str, str, int, int], ...]  # (word, voice, speed, pitch) per babble word
    noise_seed: tuple[int, ...]  # entropy for the noise waveform's generator

    def speaker_params(self) -> tuple[float, ...]:
        """Values in the order of SPEAKER_PARAM_NAMES."""
        return (float(self.speed_wpm), float(self.pitch), self.gain_db, self.snr_db, self.shift_s)


def _draw_voice(rng: np.random.Generator, split: str, p_english: float) -> str:
    languages = _voices.ENGLISH_LANGUAGES if rng.random() < p_english else _voices.ACCENT_LANGUAGES
    variants = _voices.VARIANTS_BY_SPLIT[split]
    return f"{languages[rng.integers(len(languages))]}+{variants[rng.integers(len(variants))]}"


def plan_split(config: DatasetConfig, split: str, seed: int) -> list[Utterance]:
    """All utterances of ``split``, speaker by speaker, keyword by keyword."""
    if split not in _voices.SPLITS:
        raise OptionError(f"expected one of {', '.join(_voices.SPLITS)}, got {split!r}", path="split")
    split_index = _voices.SPLITS.index(split)
    rng = np.random.default_rng([seed, split_index])
    out = []
    for speaker in range(config.speakers[split_index]):
        voice = _draw_voice(rng, split, config.p_english)
        base_speed = rng.uniform(*config.speed_wpm_range)
        base_pitch = rng.uniform(*config.pitch_range)
        for label in range(len(config.keywords)):
            for _ in range(config.utterances_per_keyword):
                kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
                babble = tuple(
                    (
                        _voices.BABBLE_WORDS[rng.integers(len(_voices.BABBLE_WORDS))],
                        _draw_voice(rng, split, config.p_english),
                        int(rng.integers(round(config.speed_wpm_range[0]), round(config.speed_wpm_range[1]) + 1)),
                        int(rng.integers(round(config.pitch_range[0]), round(config.pitch_range[1]) + 1)),
                    )
                    for _ in range(config.babble_words if kind == "babble" else 0)
                )
                index = len(out)
                out.append(
                    Utterance(
                        split=split,
                        index=index,
                        label=label,
                        voice=voice,
                        speaker=speaker,
                        speed_wpm=int(round(base_speed * (1.0 + rng.uniform(-1, 1) * config.speed_jitter))),
                        pitch=int(round(base_pitch + rng.uniform(-1, 1) * config.pitch_jitter)),
                        gain_db=float(rng.uniform(*config.gain_db_range)),
                        noise_kind=kind,
                        snr_db=float(rng.uniform(*config.snr_db_range)),
                        shift_s=float(rng.uniform(-config.shift_s_max, config.shift_s_max)),
                        babble=babble,
                        noise_seed=(seed, split_index, index),
                    )
                )
    return out
