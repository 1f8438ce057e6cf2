"""``make demo``: the main job end to end on the shipped models.

1. A word is spoken on the spot (espeak-ng, a voice the spotter never heard), turned into spikes by
   the cochlea front end of tools.datasets and streamed step by step into the shipped keyword spotter.
2. The spotter is taught two words it never heard (digits) from one example each, into a class store.
3. A fresh process loads the spotter with the same store and still knows the words, said by a new voice.
4. The adaptation contrast of ``edgesnn.demo``: the same stream from a finer sensor, no retraining.

    python -m tools.demo [--store DIR] [--skip-adapt]
    python -m tools.demo --recall DIR WORD...  # step 3 alone, as the restarted process runs it
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgesnn
from edgesnn.cli import HelpFormatter
from edgesnn.errors import MissingDependencyError

MODEL = "keywords"
#: Test-split voices (timbres the spotter never heard in training), one per role of the story.
SPEAKER, TEACHER, LISTENER = "en-us+Andy", "en-gb+linda", "en-us+quincy"
KNOWN_WORDS = ("yes", "stop", "left")
NEW_WORDS = ("seven", "three")


def spoken(word: str, voice: str, dt_s: float, *, seed: int = 0) -> np.ndarray:
    """``word`` said by ``voice`` (1 s window, light white noise) as cochlea spikes (T, 64) at ``dt_s``."""
    from tools.datasets import _voices
    from tools.datasets._binning import bin_spikes
    from tools.datasets._plan import DatasetConfig, Utterance
    from tools.datasets._render import render

    config = DatasetConfig(speakers=(0, 0, 1))
    utt = Utterance(split="test", index=0, label=_voices.KEYWORDS.index(word), voice=voice, speaker=0,
                    speed_wpm=170, pitch=50, gain_db=0.0, noise_kind="white", snr_db=30.0, shift_s=0.0, babble=(),
                    noise_seed=(seed,))  # fmt: skip
    r = render(utt, config)
    n = config.cochlea.n_channels
    return bin_spikes(r.times_us, r.units, dt_s=dt_s, n_channels=n, duration_s=config.duration_s)


def stream_word(session, spikes: np.ndarray, output: str) -> tuple[np.ndarray, float]:
    """Step ``session`` through ``spikes``; the mean ``output`` scores over the word and µs per step."""
    total = None
    t0 = time.perf_counter()
    for x in spikes:
        scores = session.step(x[None])[output][0]
        total = scores if total is None else total + scores
    return total / len(spikes), (time.perf_counter() - t0) / len(spikes) * 1e6


def recall(store: str, words: list[str]) -> int:
    """Step 3, in a process of its own: load the spotter on ``store``, hear ``words`` from a new voice."""
    model = edgesnn.load(MODEL)
    session = model.session(store=store)
    learned = session.classes()
    print(f"    new process: {MODEL} on store {store} knows {', '.join(learned) or 'no learned words'}")
    for w in words:
        scores, _ = stream_word(session, spoken(w, LISTENER, model.dt_s, seed=3), "classes")
        session.reset()
        best = learned[int(scores.argmax())] if len(learned) else "-"
        print(f"    heard {w!r} ({LISTENER}, a third voice): learned word {best!r} {'ok' if best == w else 'MISS'}")
    return 0 if set(words) <= set(learned) else 1


def story(store: str) -> int:
    """Steps 1-3; returns non-zero when the restarted process no longer knows the taught word."""
    model = edgesnn.load(MODEL)
    out = model.outputs[0].name
    print(f"edgesnn {edgesnn.__version__} demo: shipped model {MODEL!r}, {model.inputs[0].shape[0]} cochlea channels,"
          f" {model.dt_s * 1e3:g} ms steps")  # fmt: skip
    for line in model.producer.get("evaluation", []):
        print(f"  measured when made: {line['metric']} {100 * line['value']:.1f} % ({line['note']})")
    print(f"1. words spoken now by espeak-ng ({SPEAKER}, a voice it never heard), streamed step by step:")
    session = model.session()
    for word in KNOWN_WORDS:
        scores, us = stream_word(session, spoken(word, SPEAKER, model.dt_s, seed=1), out)
        session.reset()
        decided = model.labels[int(scores.argmax())]
        print(f"    said {word!r:<8} decided {decided!r:<8} {'ok' if decided == word else 'MISS'}  ({us:.0f} us/step)")
    print(f"2. teaching {' and '.join(map(repr, NEW_WORDS))}, words it never heard, one example each ({TEACHER}):")
    learner = model.session(store=store)
    for word in NEW_WORDS:
        info = learner.learn(word, spoken(word, TEACHER, model.dt_s, seed=2)[:, None])
        print(f"    learned {word!r}: its score on the example {info['score_before']:.3f} -> {info['score_after']:.3f}")
    print(f"    the store {store} now holds {', '.join(learner.classes())}")
    print("3. restarting: a new process loads the shipped model and the store")
    root = Path(__file__).resolve().parents[1]  # the checkout, so that `-m tools.demo` imports
    argv = [sys.executable, "-m", "tools.demo", "--recall", store, *NEW_WORDS]
    if subprocess.run(argv, check=False, cwd=root).returncode != 0:
        print(f"    the restarted process does not know {', '.join(NEW_WORDS)}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the story, then the adaptation contrast of edgesnn.demo."""
    ap = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.demo", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--store", help="class store to teach into (default: a fresh temporary folder)")
    ap.add_argument("--recall", nargs="+", metavar="STORE WORD", help=argparse.SUPPRESS)
    ap.add_argument("--skip-adapt", action="store_true", help="leave out step 4")
    args = ap.parse_args(argv)
    if args.recall:
        return recall(args.recall[0], args.recall[1:])
    store = args.store or tempfile.mkdtemp(prefix="edgesnn-demo-store-")
    try:
        code = story(store)
    except MissingDependencyError as exc:
        print(f"edgesnn demo: {exc} (the keyword story needs it; make sysdeps installs it)", file=sys.stderr)
        code = 1
    finally:
        if args.store is None:
            shutil.rmtree(store, ignore_errors=True)
    if code == 0 and not args.skip_adapt:
        print("4. time-resolution adaptation:")
        from edgesnn.demo import main as adaptation

        code = adaptation([])
    return code


if __name__ == "__main__":
    sys.exit(main())
