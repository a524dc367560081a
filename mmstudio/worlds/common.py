"""What every world shares: caption errors, attribute helpers, adherence, caption normalisation.

A world's attributes are a frozen dataclass whose fields are all optional: ``None`` means "left out"
in a caption (the renderer draws it at random) or "undecided" in an analyzer's answer.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from mmstudio.errors import UserError

A = TypeVar("A")

#: Splits for sampling attributes: ``train`` never yields a held-out pair, ``heldout`` yields only
#: held-out pairs, ``eval`` and ``all`` yield every combination.
SPLITS = ("train", "eval", "all", "heldout")


class CaptionError(UserError):
    """A caption that is not in a world's grammar; the message names the offending words."""

    def __init__(self, message: str, unknown: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.unknown = list(unknown)  # words outside the grammar's vocabulary, if any


def normalize_caption(text: str) -> str:
    """Lower-case, collapse whitespace and drop one trailing period: the form ``parse`` reads."""
    text = " ".join(str(text).lower().split())
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text


def check_words(text: str, vocabulary: Iterable[str], world: str, grammar: str) -> None:
    """Raise ``CaptionError`` naming every word of ``text`` that the world's grammar never uses."""
    vocab = set(vocabulary)
    unknown = [w for w in dict.fromkeys(text.split()) if w not in vocab]
    if unknown:
        words = ", ".join(f"'{w}'" for w in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise CaptionError(
            f"unknown word{plural} {words} in {world} caption '{text}'; expected: {grammar}",
            unknown,
        )


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def unknown_words(text: str, vocabulary: Iterable[str]) -> list[str]:
    """The words of ``text`` that are not in ``vocabulary``, each once, in order of appearance.

    Case and punctuation are ignored ("A dragon, flying." has the words a, dragon, flying); unlike
    ``check_words`` this says nothing about word order: it is for marking the words of a free
    prompt that a text encoder never learned, not for parsing a caption."""
    vocab = {w.lower() for w in vocabulary}
    return [w for w in dict.fromkeys(_WORD.findall(str(text).lower())) if w not in vocab]


def grammar_error(text: str, world: str, grammar: str) -> CaptionError:
    """The error for a caption whose words are all known but whose order is not in the grammar."""
    return CaptionError(f"{world} caption '{text}' does not follow the grammar: {grammar}")


def vocabulary_of(*phrases: Iterable[str]) -> set[str]:
    """Every word used in the given phrases."""
    words: set[str] = set()
    for group in phrases:
        for phrase in group:
            words.update(phrase.split())
    return words


def alternation(values: Iterable[str]) -> str:
    """A regex alternation of literal phrases, longest first so prefixes never shadow."""
    return "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))


def attrs_dict(attrs: Any) -> dict[str, str | None]:
    """The fields of an attributes dataclass as a plain dict (``None`` kept)."""
    return {f.name: getattr(attrs, f.name) for f in dataclasses.fields(attrs)}


def named(attrs: Any) -> dict[str, str]:
    """The fields that are set (not ``None``)."""
    return {k: v for k, v in attrs_dict(attrs).items() if v is not None}


def is_complete(attrs: Any) -> bool:
    """True when every field is set."""
    return all(v is not None for v in attrs_dict(attrs).values())


def adherence(prompt_attrs: Any, described_attrs: Any) -> bool:
    """True when every attribute the prompt named equals the analysed one.

    ``None`` in the analysed attributes (undecided) counts as a miss for a named attribute; an
    empty prompt (nothing named) always adheres.
    """
    described = attrs_dict(described_attrs)
    return all(described.get(k) == v for k, v in named(prompt_attrs).items())


def attribute_hits(truth: Any, described: Any) -> dict[str, bool]:
    """Per field: did the analyser recover the true value (``None`` in ``truth`` is skipped)."""
    d = attrs_dict(described)
    return {k: d[k] == v for k, v in named(truth).items()}


def fill_attrs(
    attrs: A,
    rng: np.random.Generator,
    values: Mapping[str, Sequence[str]],
    held_out: Iterable[tuple[str, str]],
    pair_fields: tuple[str, str],
    split: str = "all",
) -> A:
    """Draw every ``None`` field uniformly from ``values``, honouring the split's held-out rule.

    Fields the caller set are kept even when they form a held-out pair (a person may ask for one);
    the split only restricts what is drawn at random. Raises ``UserError`` if the fixed fields make
    the split impossible (e.g. split ``heldout`` with a pair that is not held out).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    held = set(held_out)
    fixed = attrs_dict(attrs)
    a, b = pair_fields
    for _ in range(1000):
        drawn = {
            k: (v if v is not None else str(values[k][rng.integers(len(values[k]))]))
            for k, v in fixed.items()
        }
        pair = (drawn[a], drawn[b])
        pair_fixed = fixed[a] is not None and fixed[b] is not None
        if split == "train" and pair in held and not pair_fixed:
            continue
        if split == "heldout" and pair not in held:
            if pair_fixed:
                raise UserError(f"{pair[0]} {pair[1]} is not a held-out pair")
            continue
        return dataclasses.replace(attrs, **drawn)  # type: ignore[type-var]
    raise UserError(f"no {split} attributes extend {named(attrs)}")


def choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One element of ``options``, uniformly."""
    return str(options[rng.integers(len(options))])
