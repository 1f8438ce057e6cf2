"""The vocabulary and the voices of the spoken-keyword dataset, and the voice split.

A *voice* is an espeak-ng language voice plus a voice variant, written as espeak-ng
takes it on its command line (``"de+m3"``). The language sets the letter-to-sound rules
and so the accent with which the English keywords are read; the variant sets the
timbre (formant scaling, pitch range, breathiness, the Klatt synthesiser).

The split is by variant: every language appears in every split, but the train,
validation and test splits use disjoint variant lists, so each test voice is a timbre
never heard in training, speaking with an accent that was. The lists are fixed here,
not drawn from the seed, so that datasets made with different seeds share one split.
"""

from __future__ import annotations

#: Ten command words, the ten digits, and two words kept for one-shot learning demos.
KEYWORDS: tuple[str, ...] = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "hello", "wave",
)  # fmt: skip

#: Words that never occur as keywords; babble noise is made of them.
BABBLE_WORDS: tuple[str, ...] = (
    "water", "people", "morning", "table", "garden", "number", "yellow", "window",
    "paper", "river", "little", "between", "because", "family", "silver", "question",
)  # fmt: skip

#: English voices carry the most weight; the others give accents (Latin-script languages only,
#: so that espeak-ng reads the English spelling with its own rules instead of spelling it out).
ENGLISH_LANGUAGES: tuple[str, ...] = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-029",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)  # fmt: skip
ACCENT_LANGUAGES: tuple[str, ...] = (
    "de", "nl", "af", "sv", "da", "nb", "fr-fr", "es", "it", "pt-br", "pl", "cs",
    "fi", "ro", "id", "hu", "eo",
)  # fmt: skip
#: Probability that a speaker's language is one of ENGLISH_LANGUAGES.
P_ENGLISH = 0.6

#: Variant split. Excluded on purpose: the robot and demonic voices (not speech-like) and
#: "Mr" / "fast" (test variants of espeak-ng itself).
TEST_VARIANTS: tuple[str, ...] = (
    "m4", "f3", "klatt3", "Andy", "belinda", "edward", "Hugo", "linda", "quincy",
    "steph2", "iven3", "grandma",
)  # fmt: skip
VAL_VARIANTS: tuple[str, ...] = (
    "m6", "f4", "klatt5", "Annie", "benjamin", "Gene2", "john", "michel", "robert", "zac",
)  # fmt: skip
TRAIN_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m5", "m7", "m8", "f1", "f2", "f5", "klatt", "klatt2", "klatt4",
    "klatt6", "adam", "Alex", "Alicia", "Andrea", "antonio", "aunty", "boris", "caleb",
    "david", "Denis", "Diogo", "ed", "edward2", "Gene", "gustave", "Henrique", "iven",
    "iven2", "iven4", "Jacky", "kaukovalta", "Lee", "marcelo", "Marco", "Mario", "max",
    "Michael", "miguel", "Mike", "Nguyen", "pablo", "paul", "pedro", "RicishayMax",
    "rob", "steph", "steph3", "Storm", "Tweaky", "anika", "AnxiousAndy", "grandpa",
    "norbert", "sandro", "shelby", "travis", "victor", "whisper", "whisperf", "croak",
)  # fmt: skip

SPLITS: tuple[str, ...] = ("train", "val", "test")
VARIANTS_BY_SPLIT: dict[str, tuple[str, ...]] = {
    "train": TRAIN_VARIANTS,
    "val": VAL_VARIANTS,
    "test": TEST_VARIANTS,
}
