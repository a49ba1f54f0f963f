"""The near-miss guard: a semantic candidate above the threshold is still refused when the
two prompts differ in something that changes the answer.

TF-IDF cosine measures how many weighted words two prompts share, so "What is 15% of 200?"
and "What is 15% of 300?", or "Is Python faster than Java?" and "Is Java faster than
Python?", score high while asking different questions. The guard compares a few cheap
facts of the two word lists (text.words) and refuses on any difference:

- numbers, in order ("five" counts as 5; "from 3 to 10" differs from "from 10 to 3");
- the number of negations (not, never, without, except, ... in several languages);
- units and currencies, in order (km/kilometres, °C/celsius, $/usd, ...);
- named entities: capitalised words not starting a sentence, acronyms, words mixing letters
  and digits, quoted text, and language / technology names even in lower case; each must
  occur in the other prompt too, case aside;
- topic: the content words (all but function and request words: lexicon.FUNCTION_WORDS)
  must be the same set: a word swapped ("pros" / "cons", "hamlet" / "macbeth") asks about
  another thing, a word added ("a vegan cake recipe") narrows the question;
- order: the words both prompts share (negations aside) must come in the same order, or
  differ by moving one block ("In Python, how do I reverse a list?" = "How do I reverse a list in Python?");
  two roles swapped ("a dog chases a cat" / "a cat chases a dog") is not one block move,
  nor are two neighbours trading places ("all squares rectangles" / "all rectangles squares");
- script and language: Latin vs Cyrillic vs CJK, or English vs French by their function
  words: the answer would come back in the other language.

Each check is a set or sequence comparison over ~10-50 words: tens of microseconds, run
only on candidates above the threshold, best first, until one passes; never on the index.
"""
from __future__ import annotations

from collections import Counter

from app.cache.lexicon import (AFTER_NUMBER, FUNCTION_WORDS, LANGUAGE_WORDS, NAMED, NEGATIONS,
                               UNITS, script_of)
from app.cache.text import Word, words


def refusal(first: str, second: str) -> str | None:
    """Why `second` must not be answered with `first`'s answer, or None when nothing found."""
    a, b = words(first), words(second)
    for check in (_script, _language, _numbers, _negations, _units, _entities, _quotes,
                  _topic, _order):
        reason = check(a, b, first, second)
        if reason:
            return reason
    return None


def _script(a, b, first, second) -> str | None:
    return "script" if _scripts(first) != _scripts(second) else None


def _scripts(text: str) -> set[str]:
    return {script for script in map(script_of, text) if script}


def _language(a, b, first, second) -> str | None:
    first_language, second_language = _guess(a), _guess(b)
    if first_language and second_language and first_language != second_language:
        return "language"
    return None


def _guess(found: list[Word]) -> str | None:
    """The language whose function words occur most, or None when none occur."""
    counts = Counter(language for word in found for language in LANGUAGE_WORDS.get(word.norm, ()))
    if not counts:
        return None
    (best, top), *rest = counts.most_common(2) + [(None, 0)]
    return best if top > rest[0][1] else None


def _numbers(a, b, first, second) -> str | None:
    pick = lambda found: [w.norm for w in found if w.kind == "num"]  # noqa: E731
    return "number" if pick(a) != pick(b) else None


def _negations(a, b, first, second) -> str | None:
    count = lambda found: sum(w.norm in NEGATIONS for w in found)  # noqa: E731
    return "negation" if count(a) != count(b) else None


def _units(a, b, first, second) -> str | None:
    return "unit" if _unit_list(a) != _unit_list(b) else None


def _unit_list(found: list[Word]) -> list[str]:
    """Units in order; a lone letter or "am" counts only right after a number (180C, 8 am)."""
    units = []
    for position, word in enumerate(found):
        unit = UNITS.get(word.norm)
        if unit and (word.norm not in AFTER_NUMBER
                     or (position and found[position - 1].kind == "num")):
            units.append(unit)
    return units


def _entities(a, b, first, second) -> str | None:
    in_a, in_b = {w.norm for w in a}, {w.norm for w in b}
    for name in _named(a) | _named(b):
        if name not in in_a or name not in in_b:
            return "entity"
    return None


def _named(found: list[Word]) -> set[str]:
    named = set()
    for word in found:
        raw = word.raw
        if word.kind == "num" or not raw[:1].isalpha() or raw == "I":
            continue
        capital = raw[0].isupper() and not word.initial
        acronym = len(raw) > 1 and raw.isupper()
        mixed = any(c.isdigit() for c in raw) or (raw[1:] != raw[1:].lower() and not raw.isupper())
        if capital or acronym or mixed or word.norm in NAMED:
            named.add(word.norm)
    return named


def _quotes(a, b, first, second) -> str | None:
    """Quoted text ('run', "good morning", `ls -l`) must appear in the other prompt."""
    for text, other in ((first, second), (second, first)):
        flat = " ".join(w.norm for w in words(other))
        for quoted in _quoted(text):
            if quoted and quoted not in flat:
                return "quote"
    return None


def _quoted(text: str) -> list[str]:
    spans, opened, start = [], None, 0
    closing = {'"': '"', "“": "”", "«": "»", "`": "`", "'": "'"}
    for position, char in enumerate(text):
        if opened is None and char in closing:
            before = text[position - 1] if position else " "
            if char != "'" or not before.isalnum():      # an apostrophe is not a quote
                opened, start = closing[char], position + 1
        elif opened is not None and char == opened:
            after = text[position + 1] if position + 1 < len(text) else " "
            if char != "'" or not after.isalnum():
                spans.append(" ".join(w.norm for w in words(text[start:position])))
                opened = None
    return spans


def _content(found: list[Word]) -> set[str]:
    """Topic words; a unit by its canonical name, so "km" and "kilometres" are one word."""
    return {UNITS.get(w.norm, w.norm) for w in found
            if w.kind in ("word", "cjk") and w.norm not in FUNCTION_WORDS}


def _topic(a, b, first, second) -> str | None:
    return "topic" if _content(a) != _content(b) else None


def _order(a, b, first, second) -> str | None:
    """The shared words' order: equal, or one contiguous block moved elsewhere. Negations
    are left out: a contraction moves them ("why can I not" / "why can't I"), and
    `_negations` has compared them already."""
    a = [w for w in a if w.norm not in NEGATIONS]
    b = [w for w in b if w.norm not in NEGATIONS]
    left, right = _shared(a, b), _shared(b, a)
    start = 0
    while start < len(left) and left[start] == right[start]:
        start += 1
    end = len(left)
    while end > start and left[end - 1] == right[end - 1]:
        end -= 1
    middle, other = left[start:end], right[start:end]
    if not middle:
        return None
    if len(middle) == 2 and _adjacent(a, middle) and _adjacent(b, middle):
        return "order"      # "squares rectangles" / "rectangles squares": two roles swapped
    for cut in range(1, len(middle)):
        if middle[cut] == other[0] and middle[cut:] + middle[:cut] == other:
            return None
    return "order"


def _adjacent(found: list[Word], pair: list[str]) -> bool:
    """Whether the two words stand side by side. "the population of Tokyo" / "Tokyo's
    population" or "a branch in git" / "a git branch" join them with a word on one side:
    the same compound, not swapped roles."""
    norms = [w.norm for w in found]
    return any({x, y} == set(pair) for x, y in zip(norms, norms[1:]))


def _shared(found: list[Word], other: list[Word]) -> list[str]:
    """`found`'s words that `other` also has (as many times as it has them), in order."""
    left = Counter(w.norm for w in other)
    kept = []
    for word in found:
        if left[word.norm] > 0:
            left[word.norm] -= 1
            kept.append(word.norm)
    return kept
