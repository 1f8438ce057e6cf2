"""The alphabets of the glyph dataset: Unicode ranges, the Noto font that draws each, and the split.

Every font file comes from the Debian package ``fonts-noto-core``. Only letters are taken
(general categories in ``categories``): no digits, punctuation or combining marks, which would
be drawn on a dotted circle or as a lone dot. Cased scripts keep one case (upper, where the two
cases look alike after size normalisation).

Splits follow Omniglot's habit of holding out whole alphabets: a class of the test split
belongs to a script no meta-training class comes from. Related scripts may sit in different
splits (Devanagari trains, Bengali tests), as in Omniglot.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Split names, in the order used for seeding.
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: The Debian package holding every font named below.
FONT_PACKAGE = "fonts-noto-core"

LETTERS = ("Lo",)
UPPER = ("Lu",)
ANY_LETTER = ("Lu", "Ll", "Lo")


@dataclass(frozen=True)
class Alphabet:
    """One script: the font file drawing it and the code points (inclusive ranges) to try."""

    name: str
    font: str  # file name inside the Noto font directory
    ranges: tuple[tuple[int, int], ...]
    categories: tuple[str, ...] = LETTERS


_A = Alphabet
#: All alphabets, grouped by split; order inside a split fixes the class order.
ALPHABETS: dict[str, tuple[Alphabet, ...]] = {
    "train": (
        _A("Latin", "NotoSans-Regular.ttf", ((0x0041, 0x005A),), UPPER),
        _A("Greek", "NotoSans-Regular.ttf", ((0x0391, 0x03A9),), UPPER),
        _A("Cyrillic", "NotoSans-Regular.ttf", ((0x0410, 0x042F),), UPPER),
        _A("Hebrew", "NotoSansHebrew-Regular.ttf", ((0x05D0, 0x05EA),)),
        _A("Arabic", "NotoSansArabic-Regular.ttf", ((0x0620, 0x064A),)),
        _A("Syriac", "NotoSansSyriac-Regular.ttf", ((0x0710, 0x072F),)),
        _A("Thaana", "NotoSansThaana-Regular.ttf", ((0x0780, 0x07A5),)),
        _A("NKo", "NotoSansNKo-Regular.ttf", ((0x07CA, 0x07EA),)),
        _A("Samaritan", "NotoSansSamaritan-Regular.ttf", ((0x0800, 0x0815),)),
        _A("Devanagari", "NotoSansDevanagari-Regular.ttf", ((0x0904, 0x0939),)),
        _A("Gurmukhi", "NotoSansGurmukhi-Regular.ttf", ((0x0A05, 0x0A39),)),
        _A("Telugu", "NotoSansTelugu-Regular.ttf", ((0x0C05, 0x0C39),)),
        _A("Kannada", "NotoSansKannada-Regular.ttf", ((0x0C85, 0x0CB9),)),
        _A("Malayalam", "NotoSansMalayalam-Regular.ttf", ((0x0D05, 0x0D3A),)),
        _A("Sinhala", "NotoSansSinhala-Regular.ttf", ((0x0D85, 0x0DC6),)),
        _A("Khmer", "NotoSansKhmer-Regular.ttf", ((0x1780, 0x17B3),)),
        _A("Myanmar", "NotoSansMyanmar-Regular.ttf", ((0x1000, 0x102A),)),
        _A("Tibetan", "NotoSerifTibetan-Regular.ttf", ((0x0F40, 0x0F6C),)),
        _A("Mongolian", "NotoSansMongolian-Regular.ttf", ((0x1820, 0x1878),)),
        _A("Balinese", "NotoSansBalinese-Regular.ttf", ((0x1B05, 0x1B33),)),
        _A("Sundanese", "NotoSansSundanese-Regular.ttf", ((0x1B83, 0x1BA0),)),
        _A("Tai Le", "NotoSansTaiLe-Regular.ttf", ((0x1950, 0x196D),)),
        _A("Glagolitic", "NotoSansGlagolitic-Regular.ttf", ((0x2C00, 0x2C2E),), UPPER),
        _A("Coptic", "NotoSansCoptic-Regular.ttf", ((0x2C80, 0x2CE3),), UPPER),
        _A("Yi", "NotoSansYi-Regular.ttf", ((0xA000, 0xA48C),)),
        _A("Bamum", "NotoSansBamum-Regular.ttf", ((0xA6A0, 0xA6E5),)),
        _A("Linear B", "NotoSansLinearB-Regular.ttf", ((0x10000, 0x1005D),)),
        _A("Old Turkic", "NotoSansOldTurkic-Regular.ttf", ((0x10C00, 0x10C48),)),
        _A("Adlam", "NotoSansAdlam-Regular.ttf", ((0x1E900, 0x1E921),), UPPER),
        _A("Ol Chiki", "NotoSansOlChiki-Regular.ttf", ((0x1C5A, 0x1C77),)),
    ),
    "val": (
        _A("Georgian", "NotoSansGeorgian-Regular.ttf", ((0x10D0, 0x10FA),), ANY_LETTER),
        _A("Gujarati", "NotoSansGujarati-Regular.ttf", ((0x0A85, 0x0AB9),)),
        _A("Lao", "NotoSansLao-Regular.ttf", ((0x0E81, 0x0EAE),)),
        _A("Ogham", "NotoSansOgham-Regular.ttf", ((0x1681, 0x169A),)),
        _A("Vai", "NotoSansVai-Regular.ttf", ((0xA500, 0xA60B),)),
        _A("Deseret", "NotoSansDeseret-Regular.ttf", ((0x10400, 0x10427),), UPPER),
    ),
    "test": (
        _A("Armenian", "NotoSansArmenian-Regular.ttf", ((0x0531, 0x0556),), UPPER),
        _A("Bengali", "NotoSansBengali-Regular.ttf", ((0x0985, 0x09B9),)),
        _A("Tamil", "NotoSansTamil-Regular.ttf", ((0x0B85, 0x0BB9),)),
        _A("Thai", "NotoSansThai-Regular.ttf", ((0x0E01, 0x0E2E),)),
        _A("Ethiopic", "NotoSansEthiopic-Regular.ttf", ((0x1200, 0x135A),)),
        _A("Cherokee", "NotoSansCherokee-Regular.ttf", ((0x13A0, 0x13F5),), UPPER),
        _A("Canadian Syllabics", "NotoSansCanadianAboriginal-Regular.ttf", ((0x1401, 0x166C),)),
        _A("Runic", "NotoSansRunic-Regular.ttf", ((0x16A0, 0x16EA),)),
        _A("Tifinagh", "NotoSansTifinagh-Regular.ttf", ((0x2D30, 0x2D67),)),
        _A("Javanese", "NotoSansJavanese-Regular.ttf", ((0xA984, 0xA9B2),)),
        _A("Gothic", "NotoSansGothic-Regular.ttf", ((0x10330, 0x1034A),)),
        _A("Osage", "NotoSansOsage-Regular.ttf", ((0x104B0, 0x104D3),), UPPER),
    ),
}
