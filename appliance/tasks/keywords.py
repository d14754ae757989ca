"""Seller keywords and whether a description honours them.

A keyword is a phrase ("vintage", "size 42"); sellers separate them with commas, a text
without commas is one keyword per word ("red car"), and a dataset row holds them as a list
(`"keywords": ["vintage", "size 42"]`). `adherence` is the share of given keywords
that appear in a description as whole words, and, where a reference description says where
each belongs, in that place: "vintage" in "red vintage mug" is there but misplaced against
"vintage red mug".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_KEYWORDS_CHARS = 200
"""A seller's keyword field is a few words; a longer one is refused, not truncated."""


def parse_keywords(given: str | Sequence[str] | None) -> list[str]:
    """The keyword phrases of a seller's field (a text, or a list of phrases as a dataset row
    holds them), lower-cased, blanks and repeats dropped."""
    if not given:
        return []
    if isinstance(given, str):
        parts = given.split(",") if "," in given else given.split()
    else:
        parts = [str(part) for part in given]
    phrases = (" ".join(part.lower().split()) for part in parts)
    return list(dict.fromkeys(p for p in phrases if p))


def keywords_text(given: str | Sequence[str] | None) -> str:
    """The keyword phrases as one seller's field that `parse_keywords` reads back to the same
    phrases: comma-separated ("vintage, size 42"), and a lone phrase of several words with a
    trailing comma ("size 42,"), which would otherwise read as one keyword per word."""
    phrases = parse_keywords(given)
    text = ", ".join(phrases)
    return f"{text}," if len(phrases) == 1 and " " in text else text


def prompt_words(given: str | Sequence[str] | None) -> str:
    """The keywords as the words a model's prompt is given: commas dropped, phrases in order."""
    return " ".join(parse_keywords(given))


def _at(words: Sequence[str], phrase: Sequence[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(words) - n + 1) if list(words[i : i + n]) == list(phrase)]


def honoured(description: str, keywords: Sequence[str], reference: str | None = None) -> list[bool]:
    """Per keyword, whether `description` has it as whole words, and on the same side of the
    first other reference word the description also has as the reference puts it ("vintage"
    before "red", "size 42" after it); without a reference, or with no word in common, presence
    alone."""
    words = description.lower().split()
    ref = reference.lower().split() if reference is not None else []
    taken = {i + j for k in keywords for i in _at(ref, k.split()) for j in range(len(k.split()))}
    anchor = next((w for i, w in enumerate(ref) if i not in taken and w in words), None)
    hits = []
    for keyword in keywords:
        phrase = keyword.split()
        found, wanted = _at(words, phrase), _at(ref, phrase)
        if not found or not wanted or anchor is None:
            hits.append(bool(found))
            continue
        before = wanted[0] < ref.index(anchor)
        hits.append(any((i < words.index(anchor)) == before for i in found))
    return hits


@dataclass(frozen=True)
class Adherence:
    given: int
    honoured: int

    @property
    def share(self) -> float | None:
        return self.honoured / self.given if self.given else None


def adherence(
    descriptions: Sequence[str],
    keywords: Sequence[str | Sequence[str] | None],
    references: Sequence[str | None] | None = None,
) -> Adherence:
    """Keywords given and honoured over many answers (a micro-average: every keyword counts
    once)."""
    refs = references if references is not None else [None] * len(descriptions)
    given = kept = 0
    for description, text, ref in zip(descriptions, keywords, refs, strict=True):
        hits = honoured(description, parse_keywords(text), ref)
        given += len(hits)
        kept += sum(hits)
    return Adherence(given, kept)
