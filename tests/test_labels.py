"""Label schemes: canonical names, aliases, display names, dataset ids, cross-dataset mappings."""

import pytest

from emolib import labels as L


def test_canonical_order_and_eight_classes():
    assert L.EMOTIONS_7 == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert L.EMOTIONS_8[-1] == "contempt" and len(L.EMOTIONS_8) == 8


@pytest.mark.parametrize("alias, name", [("Anger", "angry"), ("sadness", "sad"), ("HAPPINESS", "happy"),
                                         ("surprised", "surprise"), (" neutral ", "neutral")])
def test_aliases_map_to_canonical_names(alias, name):
    assert L.canonical(alias) == name


def test_unknown_label_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown emotion label 'bored'"):
        L.canonical("bored")


def test_french_names_and_emoji_of_the_original_project():
    assert [L.display_name(e) for e in ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral",
                                        "contempt")] == [
        "Surprise", "Peur", "Dégoût", "Joie", "Tristesse", "Colère", "Neutre", "Mépris"]
    assert L.display_name("happy", "en") == "Happy"
    assert L.emoji("happiness") == "😄"
    with pytest.raises(ValueError):
        L.display_name("happy", "de")


def test_dataset_id_schemes():
    assert L.RAFDB_IDS[1] == "surprise" and L.RAFDB_IDS[6] == "angry" and L.RAFDB_IDS[7] == "neutral"
    assert L.FER2013_IDS[0] == "angry" and L.FER2013_IDS[6] == "neutral"
    assert [L.canonical(c) for c in L.FERPLUS_VOTE_COLUMNS[:8]] == [
        "neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]


def test_label_mapping_keeps_only_shared_classes():
    ck_style = ("anger", "contempt", "happiness", "sadness")
    mapping = L.label_mapping(ck_style, L.EMOTIONS_7)
    assert mapping == {0: 0, 2: 3, 3: 4}  # contempt has no 7-class counterpart
    assert L.label_mapping(L.EMOTIONS_7, L.EMOTIONS_8) == {i: i for i in range(7)}
