"""What the synthetic corpus says: keywords, carrier sentences, confusables, partial keywords,
a large word list and generated non-keyword sentences (issue 7).

Everything is generated from a seed, so the corpus is reproducible. Negative texts are checked to
contain no keyword (`contains_keyword`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# label -> spellings that every TTS engine pronounces as the keyword ("onword" = "on word").
KEYWORDS: dict[str, tuple[str, ...]] = {
    "computer": ("computer",),
    "operator": ("operator",),
    "think engine": ("think engine",),
    "onword": ("on word", "on-word"),
    "wildfire": ("wildfire", "wild fire"),
    "voyager": ("voyager",),
    "terminator": ("terminator",),
    "grasshopper": ("grasshopper",),
    "bumblebee": ("bumblebee", "bumble bee"),
    "blueberry": ("blueberry",),
}

CONFUSABLES = (
    "commuter", "computed", "compute", "computing", "commute", "computation", "competitor",
    "operate", "opera", "operation", "operating", "cooperator", "separator", "moderator",
    "voyage", "voyages", "foyer", "lawyer", "wildlife", "wild", "fire", "wildflower", "wildcat",
    "campfire", "terminal", "terminate", "termination", "exterminator", "determined",
    "grass", "hopper", "grasshoppers' field", "glass hopper", "shopper", "bumble", "bumbling",
    "humble bee", "honeybee", "bee", "raspberry", "strawberry", "blackberry", "blue", "berry",
    "blue jeans", "engine", "engineer", "thinking", "think", "thank you", "ink engine",
    "word", "words", "on", "onward", "on the world", "one word", "answer", "cucumber",
    "navigator", "alligator", "elevator", "voyager's", "go away", "computer's", "calculator",
    "ventilator", "dominator", "bulldozer", "grass cutter", "rumble", "tumble", "bubble bee",
    "blue barry", "blueprint", "blubbering", "terminus", "commuters", "operetta",
)
# Confusables that ARE a keyword form must not be labelled negative.
_KEYWORD_FORMS = ("voyager's", "computer's", "grasshoppers' field")
# Confusables that ARE the keyword in some accents: "blue barry" is "blueberry" where marry and
# merry merge. They stay in CONFUSABLES (removing one would redraw every voice's render plan);
# `kwsd train --drop-near-homophones` leaves them out of the head's training negatives.
NEAR_HOMOPHONES = ("blue barry",)

PARTIALS = ("voya", "voy", "wild", "wildfi", "opera", "opera-", "operay", "compu", "comp",
            "computa", "grass", "grassho", "bumble", "bumbleb", "termina", "termin", "blueber",
            "bluebe", "think", "think en", "engi", "on", "on wor", "wor", "fire", "hopper",
            "puter", "rator", "ager", "minator", "berry")

# Carrier sentences: (prefix, suffix); the keyword goes between them.
CARRIERS = (
    ("hey", "what time is it"), ("okay", "turn on the lights"), ("", "please call my mother"),
    ("I said", "not the other one"), ("hello", ""), ("can you hear me", "are you there"),
    ("listen", "play some music"), ("the word is", "and that is all"),
    ("please", "set a timer for ten minutes"), ("", "stop"), ("so", "what is the weather like"),
    ("I think the", "is broken again"), ("yes", "I am ready"), ("well", "open the door"),
    ("she shouted", "twice"), ("tell me", "how far is it"), ("good morning", "start the day"),
    ("now", ""), ("we need the", "right away"), ("all right", "cancel that"),
)

_SUBJECTS = ("the man", "my sister", "a small dog", "our neighbour", "the teacher", "nobody",
             "everyone", "the old car", "my friend", "the children", "this company", "the wind",
             "a stranger", "the doctor", "his brother", "the train", "the manager", "she", "he",
             "they", "we", "I", "you", "the little girl", "the farmer", "my boss", "the cat")
_VERBS = ("wants", "found", "bought", "likes", "painted", "forgot", "carried", "opened",
          "sold", "watched", "cleaned", "needs", "broke", "fixed", "brought", "lost", "moved",
          "ordered", "remembers", "borrowed", "counted", "dropped", "washed", "hid")
_OBJECTS = ("the red box", "a cup of tea", "three apples", "the window", "a new jacket",
            "the kitchen table", "his keys", "a long letter", "the garden fence", "some bread",
            "the radio", "an umbrella", "the last ticket", "a blue bicycle", "the newspaper",
            "a heavy bag", "two chairs", "the map", "a yellow pencil", "the money", "the lamp")
_PLACES = ("in the morning", "at the station", "after lunch", "near the river", "on Monday",
           "before dinner", "in the park", "at home", "last summer", "yesterday", "every day",
           "at the market", "downstairs", "in the rain", "next week", "at midnight", "",
           "behind the house", "on the bus", "in London", "for a while", "again")
_QUESTIONS = ("where is the nearest bank", "what did you say", "how much does it cost",
              "could you repeat that please", "why is the door open", "who called this morning",
              "when does the shop close", "is it going to rain today", "did you see the game",
              "can I help you with that", "what is your name", "how long will it take",
              "which way is the station", "are we there yet", "have you had lunch")
_COMMANDS = ("turn off the radio", "close the window please", "call me back later",
             "send the message now", "wait a moment", "set an alarm for seven",
             "read the last email", "play the next song", "lock the front door",
             "switch on the kitchen light", "make it louder", "show me the pictures",
             "add milk to the list", "remind me tomorrow", "skip this one")
_FILLERS = ("um", "well", "you know", "actually", "so", "right", "okay then", "anyway", "hmm",
            "by the way", "to be honest", "I mean")
_NAMES = ("Anna", "Peter", "Maria", "John", "Linda", "Robert", "Susan", "David", "Karen",
          "Michael", "Grace", "Thomas", "Eileen", "Oscar", "Fatima", "Hiroshi", "Ingrid")

_KW_PATTERNS = [re.compile(r"\b" + p + r"\b", re.I) for p in (
    r"computers?", r"operators?", r"think\W+engines?", r"on\W*words?", r"wild\W*fires?",
    r"voyagers?", r"terminators?", r"grass\W*hoppers?", r"bumble\W*bees?", r"blue\W*berr(y|ies)",
    r"onword")]


def contains_keyword(text: str) -> bool:
    """True if the text contains a demo keyword (so it must not be a negative)."""
    return any(p.search(text) for p in _KW_PATTERNS)


_NEAR_HOMOPHONE_PATTERNS = [re.compile(r"\b" + re.escape(h) + r"\b", re.I)
                            for h in NEAR_HOMOPHONES]


def says_near_homophone(text: str) -> bool:
    """True if the text says a near-homophone of a demo keyword (neither it nor clearly not it)."""
    return any(p.search(text) for p in _NEAR_HOMOPHONE_PATTERNS)


def negative_confusables() -> list[str]:
    return [w for w in CONFUSABLES if w not in _KEYWORD_FORMS and not contains_keyword(w)]


@dataclass(frozen=True)
class Vocabulary:
    """Keywords (label -> spellings) with their hard negatives; `contains` guards negatives."""

    keywords: dict[str, tuple[str, ...]]
    confusables: tuple[str, ...]
    partials: tuple[str, ...]
    patterns: tuple[re.Pattern, ...]

    def contains(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)


def demo_vocabulary() -> Vocabulary:
    return Vocabulary(dict(KEYWORDS), tuple(negative_confusables()), PARTIALS,
                      tuple(_KW_PATTERNS))


def custom_vocabulary(keywords: list[str], words: list[str] | None = None) -> Vocabulary:
    """A user's own keywords: partials are cut from the keyword, confusables are dictionary
    words that share its first four letters or one of its words (e.g. 'lights on' -> 'light',
    'lighter', 'on')."""
    kws = [" ".join(k.lower().split()) for k in keywords if k.strip()]
    if not kws:
        raise ValueError("no keywords given")
    for k in kws:
        if not re.fullmatch(r"[a-z' -]+", k):
            raise ValueError(f"keyword {k!r}: use plain English letters, spaces and hyphens")
    patterns = tuple(re.compile(r"\b" + r"\W*".join(map(re.escape, re.split(r"[ -]+", k)))
                                + r"s?\b", re.I) for k in kws)

    def hit(text: str) -> bool:
        return any(p.search(text) for p in patterns)
    words = words if words is not None else []
    conf: list[str] = []
    parts: list[str] = []
    for k in kws:
        letters = k.replace(" ", "").replace("-", "")
        stems = {letters[:4]} | {w for w in re.split(r"[ -]+", k) if len(w) >= 2}
        conf += [w for w in words if w[:4] in stems and not hit(w)][:30]
        conf += [w for w in re.split(r"[ -]+", k) if len(w) >= 2]
        for frac in (0.4, 0.6, 0.8):
            cut = max(2, int(round(len(letters) * frac)))
            if cut < len(letters):
                parts.append(letters[:cut])
        parts.append(letters[len(letters) // 2:])
    conf = [c for c in dict.fromkeys(conf) if not hit(c)]
    parts = [q for q in dict.fromkeys(parts) if not hit(q)]
    return Vocabulary({k: (k,) for k in kws}, tuple(conf), tuple(parts), patterns)


def cmu_words(limit: int | None = None) -> list[str]:
    """Plain alphabetic words from the CMU pronouncing dictionary shipped with pocketsphinx."""
    path = _cmudict_path()
    words = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = line.split(" ", 1)[0]
            if "(" in w or not re.fullmatch(r"[a-z]{2,14}", w) or contains_keyword(w):
                continue
            words.append(w)
    words = sorted(set(words))
    return words[:limit] if limit else words


def _cmudict_path() -> Path:
    try:
        import pocketsphinx
    except ImportError:
        raise FileNotFoundError("the CMU dictionary comes with pocketsphinx: "
                                "pip install pocketsphinx (scripts/install-tts.sh)") from None
    base = Path(pocketsphinx.__file__).parent
    for cand in sorted(base.rglob("*.dict")):
        if cand.stat().st_size > 1_000_000:
            return cand
    raise FileNotFoundError(f"no CMU dictionary (*.dict over 1 MB) under {base}")


def fallback_words() -> list[str]:
    """Words from the sentence grammar, when the CMU dictionary is not installed."""
    pool = " ".join(_SUBJECTS + _VERBS + _OBJECTS + _PLACES + _QUESTIONS + _COMMANDS + _NAMES)
    return sorted({w.lower() for w in re.findall(r"[A-Za-z]{2,}", pool)})


def word_list() -> list[str]:
    try:
        return cmu_words()
    except FileNotFoundError:
        return fallback_words()


def _sentence(rng: np.random.Generator, words: list[str], conf: list[str]) -> str:
    kind = rng.integers(0, 8)
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    if kind <= 2:
        s = f"{pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)} {pick(_PLACES)}"
    elif kind == 3:
        s = pick(_QUESTIONS)
    elif kind == 4:
        s = f"{pick(_FILLERS)} {pick(_COMMANDS)}"
    elif kind == 5:
        s = (f"{pick(_NAMES)} told me that {pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)}")
    elif kind == 6:  # word salad: phonetic variety from the large word list
        s = " ".join(pick(words) for _ in range(int(rng.integers(3, 9))))
    else:  # a sentence around a confusable word, the hardest negatives
        s = f"{pick(_SUBJECTS)} {pick(_VERBS)} the {pick(conf)} {pick(_PLACES)}"
    if rng.random() < 0.15:
        s = f"{pick(_FILLERS)}, {s}"
    return " ".join(s.split())


def sentences(n: int, seed: int, words: list[str] | None = None,
              vocab: Vocabulary | None = None) -> list[str]:
    """n generated non-keyword sentences (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    words = words or word_list()
    vocab = vocab or demo_vocabulary()
    conf = list(vocab.confusables) or words
    out: list[str] = []
    while len(out) < n:
        s = _sentence(rng, words, conf)
        if not contains_keyword(s) and not vocab.contains(s):
            out.append(s)
    return out
