"""Words of a prompt, normalised the same way for the semantic matcher and the near-miss guard.

Lower case, contractions opened ("doesn't" -> does not, "what's" -> what is), number words
and thousands separators turned into digits ("five" -> 5, "1,000" -> 1000), light plural
stripping ("lists" -> list), plain synonyms spelled one way ("remove" -> delete), CJK
characters one word each (those scripts do not use spaces).
Each word keeps its raw spelling and whether it starts a sentence, for the guard's
capitalisation test.
"""
from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_WORD = re.compile(
    rf"(?P<cjk>[{_CJK}])"
    r"|(?P<num>\d+(?:[.,]\d+)*)"
    rf"|(?P<word>[^\W\d_{_CJK}]+(?:'[^\W\d_{_CJK}]+)*)"
    r"|(?P<sym>[%$€£¥°#+])"
    r"|(?P<end>[.!?;:\n。！？])")

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1000000, "billion": 1000000000, "dozen": 12, "first": 1, "second": 2,
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "once": 1, "twice": 2, "half": 0.5,
}
# English contraction endings; any other apostrophe is an elision (l'eau, n'est, dell'acqua).
# "'s" is "is" after these words and a possessive (dropped) after any other.
_SUFFIXES = {"s": (), "re": ("are",), "ve": ("have",), "ll": ("will",), "d": ("would",),
             "m": ("am",), "t": ("not",)}
_IS_HEADS = frozenset("what that it there here who where how when why he she".split())
_IRREGULAR = {"won't": ("will", "not"), "can't": ("can", "not"), "cannot": ("can", "not"),
              "shan't": ("shall", "not"), "ain't": ("is", "not")}

# Words that ask the same thing in any question, by one spelling (after plural stripping).
# Only exact equivalents: a word that narrows or shifts the question is not a synonym.
_SYNONYM_GROUPS = (
    "delete remove erase", "build construct", "built constructed", "plane airplane aeroplane",
    "car automobile", "start begin", "started began begun", "fix repair", "fixed repaired",
    "buy purchase", "use utilize utilise", "find locate", "fast quick", "big large",
    "child kid children", "cheap inexpensive", "smart intelligent", "leaky leaking",
    "mean meaning", "summary summarize summarise", "movie film", "photo photograph",
    "answer reply", "doctor physician", "sofa couch", "holiday vacation",
)
_SYNONYMS = {word: group.split()[0] for group in _SYNONYM_GROUPS for word in group.split()}

_NOT_PLURAL = frozenset("https mbps gbps kbps fps bps dns sms ios macos windows aws news".split())


class Word(NamedTuple):
    norm: str        # the normalised form the matcher and the guard compare
    raw: str         # as written
    initial: bool    # first word of a sentence (its capital letter says nothing)
    kind: str        # "word", "num", "cjk" or "sym"


def words(text: str) -> list[Word]:
    """The normalised words of `text`, in order."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    found: list[Word] = []
    initial = True
    for match in _WORD.finditer(text):
        kind = match.lastgroup
        raw = match.group()
        if kind == "end":
            initial = True
            continue
        if kind == "num":
            found.append(Word(_number(raw), raw, initial, "num"))
        elif kind == "word":
            for norm in _open(raw.lower()):
                number = _NUMBER_WORDS.get(norm)
                if number is not None:
                    found.append(Word(_format(number), raw, initial, "num"))
                elif raw.isupper() and len(raw) > 1:    # HTTPS, GPS: not plurals
                    found.append(Word(norm, raw, initial, "word"))
                else:
                    stemmed = stem(norm)
                    found.append(Word(_SYNONYMS.get(stemmed, stemmed), raw, initial, "word"))
        else:
            found.append(Word(raw.lower(), raw, initial, kind))
        initial = False
    return found


def norms(text: str) -> list[str]:
    return [word.norm for word in words(text)]


def _open(word: str) -> tuple[str, ...]:
    """Contractions and elisions as separate words."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if "'" not in word:
        return (word,)
    head, _, tail = word.partition("'")
    if tail in _SUFFIXES:
        if tail == "t" and head.endswith("n"):
            return (head[:-1], "not")
        if tail == "s" and head in _IS_HEADS:
            return (head, "is")
        return (head, *_SUFFIXES[tail])
    return (head, *_open(tail))


def stem(word: str) -> str:
    """Plural to singular, roughly; enough that "lists" and "list" are one word."""
    if word in _NOT_PLURAL:
        return word
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        return word[:-1]
    return word


def _number(raw: str) -> str:
    """One spelling per number: "1,000" and "1000"; "3.50", "3,50" and "3.5"."""
    if len(raw) > 30:
        return raw
    if "," in raw and "." in raw:            # 1,000.50 or 1.000,50: the last mark is decimal
        point = max(raw.rfind(","), raw.rfind("."))
        return _format(float(re.sub(r"[.,]", "", raw[:point]) + "." + raw[point + 1:]))
    parts = re.split(r"[.,]", raw)
    if len(parts) == 1:
        return _format(int(raw))
    if len(parts) > 2 or ("," in raw and len(parts[1]) == 3):   # thousands separators
        return _format(int("".join(parts)))
    return _format(float(".".join(parts)))


def _format(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))
