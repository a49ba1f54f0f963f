"""Word lists for the near-miss guard, in text.words' normalised forms (lower case, plurals
stripped by the same rule)."""
from __future__ import annotations

from app.cache.text import stem


def _forms(*groups: str) -> frozenset[str]:
    return frozenset(stem(word) for group in groups for word in group.split())


# Words that carry no topic of their own: articles, pronouns, present-tense auxiliaries and
# modals, non-directional prepositions, courtesy and request words. Two prompts differing only
# in these ask the same thing. Left out on purpose, because they change the answer: how, why,
# when, where, who; was, were, did, had; he, she, him, her; all, some, any, or; from, into.
FUNCTION_WORDS = _forms(
    "a an the this that these those it its i me my mine we us our you your they them their"
    " there here what which whose is are be been being am do does done doing have has having"
    " can could will would shall should may might must of to in on at by for with about as"
    " then so such also very too just really actually exactly quite rather simply basically"
    " please kindly thank thanks hi hello hey ok okay tell give show provide explain describe"
    " help know want need like wish wonder curious let get make way much s and but if whether",
    # French, German, Spanish, Italian, Portuguese, Dutch
    "le la les l un une des du de d et ou est sont à au aux pour par sur dans en que qu qui quel"
    " quelle quels quelles ce cette ces il elle je j tu vous nous se s sa ses mon ma mes"
    " merci faire",
    "der das den dem des ein eine einen einem einer und oder ist sind zu von mit für im in"
    " auf an am es ich du sie wir sich bitte danke eigentlich haben wie",
    "el los las una unos unas y o es del en por para que se tu su lo al cómo qué"
    " hago hace gracias",
    "il lo gli una è e di da su per che si del della dello delle dei alla al grazie",
    "um uma é em no na do da para como obrigado",
    "het een en op voor dat dank",
)

# Which languages a function word points to; a word shared by several points to each.
_LANGUAGES = {
    "en": "the is are what how why and of to with for this that do does can my you which who"
          " when where there be was have not it in on",
    "fr": "le les est et une des du pour avec dans que qui quel quelle comment pourquoi pas ce"
          " cette sont je vous nous au aux sur la de l d un",
    "de": "der die das und ist sind nicht ein eine mit für wie was warum ich du wir auf von zu"
          " hat haben im den dem in es",
    "es": "el los las y qué cómo por para una con se la de un es que en",
    "it": "il gli è di che come perché non una con per della del la un e in",
    "pt": "os não é um uma como para com que em de e",
    "nl": "het een en van hoe wat waarom niet met voor op de is in",
}
LANGUAGE_WORDS: dict[str, tuple[str, ...]] = {}
for _language, _words in _LANGUAGES.items():
    for _word in _forms(_words):
        LANGUAGE_WORDS[_word] = LANGUAGE_WORDS.get(_word, ()) + (_language,)

NEGATIONS = _forms(
    "not no never none nothing nobody nowhere neither nor without except excluding",
    "ne n pas jamais sans aucun aucune rien",
    "nicht kein keine keinen keinem keiner nie niemals ohne nichts",
    "nunca sin ningún ninguno ninguna nada jamás tampoco",
    "non mai senza nessuno nessuna niente nulla",
    "não sem nenhum nenhuma",
    "niet geen nooit zonder niets",
    "不 没 沒 别 別 无 無 非",
)

# Names users often write in lower case: languages, programming languages, platforms.
NAMED = _forms(
    "english french german spanish italian portuguese dutch russian chinese mandarin"
    " cantonese japanese korean arabic hindi bengali urdu turkish greek polish swedish"
    " norwegian danish finnish czech hungarian romanian ukrainian hebrew persian thai"
    " vietnamese indonesian malay swahili latin",
    "python java javascript typescript ruby rust golang kotlin swift php perl scala haskell"
    " elixir erlang clojure lua dart julia matlab fortran cobol bash zsh powershell sql mysql"
    " postgres postgresql sqlite mongodb redis react vue angular svelte django flask rails"
    " laravel spring node nodejs deno linux ubuntu debian fedora centos macos ios android"
    " aws azure gcp docker kubernetes nginx excel",
)

UNITS: dict[str, str] = {}
for _canonical, _spellings in {
    "km": "km kilometer kilometre", "m": "m meter metre", "cm": "cm centimeter centimetre",
    "mm": "mm millimeter millimetre", "mi": "mi mile", "ft": "ft foot feet", "in": "inch inche",
    "yd": "yd yard", "kg": "kg kilogram kilo", "g": "g gram gramme", "mg": "mg milligram",
    "lb": "lb lbs pound", "oz": "oz ounce", "t": "t ton tonne", "l": "l liter litre",
    "ml": "ml milliliter millilitre", "gal": "gal gallon", "qt": "qt quart", "pint": "pint",
    "cup": "cup", "tbsp": "tbsp tablespoon", "tsp": "tsp teaspoon", "c": "c celsius",
    "f": "f fahrenheit", "k": "k kelvin", "deg": "° degree", "ms": "ms millisecond",
    "s": "s sec second", "min": "min minute", "h": "h hr hour", "day": "day", "week": "week",
    "month": "month", "year": "yr year", "kb": "kb kilobyte", "mb": "mb megabyte",
    "gb": "gb gigabyte", "tb": "tb terabyte", "kib": "kib", "mib": "mib", "gib": "gib",
    "mbps": "mbps", "gbps": "gbps", "mph": "mph", "kmh": "kmh kph", "usd": "$ usd dollar",
    "eur": "€ eur euro", "gbp": "£ gbp sterling", "jpy": "¥ jpy yen",
    "chf": "chf franc franken",
    "inr": "inr rupee", "cny": "cny yuan rmb", "%": "% percent percentage prozent", "px": "px",
    "pt": "pt", "kcal": "kcal cal calorie", "kwh": "kwh", "acre": "acre",
    "ha": "ha hectare", "am": "am", "pm": "pm",
}.items():
    for _spelling in _forms(_spellings):
        UNITS[_spelling] = _canonical

_SCRIPTS = (("latin", 0x41, 0x24F), ("greek", 0x370, 0x3FF), ("cyrillic", 0x400, 0x4FF),
            ("hebrew", 0x590, 0x5FF), ("arabic", 0x600, 0x6FF), ("devanagari", 0x900, 0x97F),
            ("thai", 0xE00, 0xE7F), ("kana", 0x3040, 0x30FF), ("han", 0x3400, 0x9FFF),
            ("hangul", 0xAC00, 0xD7AF))


# Unit spellings that are also ordinary words ("I am", "a m") count only after a number.
AFTER_NUMBER = frozenset(spelling for spelling in UNITS if len(spelling) == 1) | {"am", "pm"}


def script_of(char: str) -> str | None:
    """The writing system of a letter (None for digits, punctuation and spaces)."""
    if not char.isalpha():
        return None
    code = ord(char)
    for name, low, high in _SCRIPTS:
        if low <= code <= high:
            return name
    return "other"
