"""Canonical emotion names, per-dataset label schemes, display names and mappings.

Every emolib model and dataset speaks in *canonical* English names (``"happy"``, ``"sad"`` …).
Datasets that number or name their classes differently are translated here, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Canonical order of emolib models unless a model card says otherwise.
EMOTIONS_7: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Eight-class order (FER+, AffectNet): the seven plus contempt.
EMOTIONS_8: tuple[str, ...] = EMOTIONS_7 + ("contempt",)

#: French display names of the original project.
FRENCH_NAMES: dict[str, str] = {
    "surprise": "Surprise",
    "fear": "Peur",
    "disgust": "Dégoût",
    "happy": "Joie",
    "sad": "Tristesse",
    "angry": "Colère",
    "neutral": "Neutre",
    "contempt": "Mépris",
}
ENGLISH_NAMES: dict[str, str] = {name: name.capitalize() for name in EMOTIONS_8}
EMOJI: dict[str, str] = {
    "angry": "😠",
    "disgust": "🤢",
    "fear": "😨",
    "happy": "😄",
    "sad": "😢",
    "surprise": "😲",
    "neutral": "😐",
    "contempt": "😒",
}

#: Other spellings met in dataset folders and label files (CK+, AffectNet, FER+ …).
ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}

#: RAF-DB basic-emotion ids (``list_patition_label.txt`` and folders ``1..7``).
RAFDB_IDS: dict[int, str] = {
    1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry", 7: "neutral",
}
#: FER2013 csv ``emotion`` column ids.
FER2013_IDS: dict[int, str] = dict(enumerate(EMOTIONS_7))
#: AffectNet ``expression`` codes (8 none, 9 uncertain, 10 no-face are not emotions: dropped).
AFFECTNET_IDS: dict[int, str] = {
    0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "angry", 7: "contempt",
}
#: ExpW ``label.lst`` expression codes: FER2013's order.
EXPW_IDS: dict[int, str] = FER2013_IDS
#: FER+ ``label.csv`` vote columns, in file order (the last two are not emotions).
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)


def canonical(name: str) -> str:
    """Return the canonical emotion name for ``name`` (case-insensitive, aliases allowed).

    Raises
    ------
    ValueError
        If ``name`` is not a known emotion.
    """
    key = str(name).strip().lower()
    if key not in ALIASES:
        raise ValueError(f"unknown emotion label {name!r}; known: {sorted(set(ALIASES))}")
    return ALIASES[key]


def display_name(emotion: str, language: str = "fr") -> str:
    """Display name of a canonical emotion: ``"fr"`` (default, as the original project) or ``"en"``."""
    names = {"fr": FRENCH_NAMES, "en": ENGLISH_NAMES}.get(language)
    if names is None:
        raise ValueError(f"language must be 'fr' or 'en', not {language!r}")
    return names[canonical(emotion)]


def emoji(emotion: str) -> str:
    """Emoji of a canonical emotion."""
    return EMOJI[canonical(emotion)]


def label_mapping(source: Sequence[str], target: Sequence[str]) -> dict[int, int]:
    """Map indices of ``source`` classes to indices of the same emotions in ``target``.

    Classes of ``source`` that ``target`` lacks are left out, so cross-dataset evaluation
    can keep only the shared classes.
    """
    target_index = {canonical(name): i for i, name in enumerate(target)}
    return {
        i: target_index[canonical(name)]
        for i, name in enumerate(source)
        if canonical(name) in target_index
    }


def canonical_classes(names: Iterable[str]) -> tuple[str, ...]:
    """Canonical names of ``names`` in canonical order (7 or 8 classes first, as in EMOTIONS_8)."""
    wanted = {canonical(n) for n in names}
    return tuple(name for name in EMOTIONS_8 if name in wanted)
