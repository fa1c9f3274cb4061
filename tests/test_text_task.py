"""Text preparation: cleaning, tokens, vocabulary from train only, splits that never leak."""

from __future__ import annotations

import pandas as pd
import pytest

from grutune.config import DataConfig
from grutune.exceptions import DataError
from grutune.search_space import train_config
from grutune.tasks import get_task
from grutune.tasks.text_classification import (
    build_vocab,
    clean_text,
    encode_docs,
    row_id,
    tokenize,
)

from .conftest import make_texts


def test_clean_and_tokenize():
    assert clean_text("<b>Not</b>&amp; <i>GOOD</i>\n\tat all") == "not & good at all"
    assert tokenize("it's not good", stop_words=False) == ["it's", "not", "good"]
    assert tokenize("it is not good at all", stop_words=True) == ["good"]
    assert tokenize("the dogs loved it", stop_words=True, stem=True) == ["dog", "love"]
    assert tokenize("running runs", stop_words=False, stem=True) == ["run", "run"]
    assert tokenize("", stop_words=False, stem=True) == []


def test_stems_reach_the_vocabulary_and_the_files_to_predict(tmp_path):
    """--stem: the vocabulary holds stems only, and a file to predict is encoded with the
    same stems (a word seen only inflected otherwise in training is known, not <unk>)."""
    rows = [{"text": f"{w} tasting {n}", "label": label}
            for n in range(30) for w, label in (("loved", "pos"), ("hated", "neg"))]
    plain = _prepare(tmp_path, pd.DataFrame(rows))
    stemmed = _prepare(tmp_path, pd.DataFrame(rows), stem=True)
    assert {"loved", "tasting"} <= set(plain.state["vocab"])
    assert {"love", "tast", "hate"} <= set(stemmed.state["vocab"])
    assert not {"loved", "tasting", "hated"} & set(stemmed.state["vocab"])
    assert stemmed.state["stem"] is True and plain.state["stem"] is False
    task = get_task("text")
    unseen_form = pd.DataFrame({"text": ["loves tastes"]})
    ids = task.encode(unseen_form, stemmed.state, "new.csv").x[0].tolist()
    vocab = stemmed.state["vocab"]
    assert [vocab[i] for i in ids] == ["love", "tast"]
    assert task.encode(unseen_form, plain.state, "new.csv").x[0].tolist() == [1, 1]  # <unk>


def test_a_bundle_keeps_its_own_stop_words_and_predicts_without_scikit_learn(tmp_path):
    """--stop-words: the state records the list it removed, and a file to predict is
    tokenized with that list (not whatever scikit-learn's becomes), with no scikit-learn
    import at all; a state from before the list was stored still removes scikit-learn's."""
    import json
    import subprocess
    import sys

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    prep = _prepare(tmp_path, make_texts(10), stop_words=True)
    assert prep.state["stop_word_list"] == sorted(ENGLISH_STOP_WORDS)
    assert "the" not in prep.state["vocab"]
    assert "stop_word_list" not in _prepare(tmp_path, make_texts(10)).state
    state = {**prep.state, "vocab": ["<pad>", "<unk>", "the", "news", "is"],
             "stop_word_list": ["is"]}
    code = ("import json, sys\n"
            "import pandas as pd\n"
            "from grutune.tasks import get_task\n"
            "state = json.loads(sys.stdin.read())\n"
            "frame = pd.DataFrame({state['text_column']: ['The news is news']})\n"
            "print(get_task('text').encode(frame, state, 'new.csv').x[0].tolist(),\n"
            "      'sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(state),
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split() == ["[2,", "3,", "3]", "False"]  # "is" removed, "the" kept
    old = {k: v for k, v in state.items() if k != "stop_word_list"}
    frame = pd.DataFrame({state["text_column"]: ["The news is news"]})
    assert get_task("text").encode(frame, old, "new.csv").x[0].tolist()[:2] == [3, 3]


def test_stems_default_per_dataset_and_off_for_user_files(tmp_path):
    """fine-food-reviews stems by default (measured better on its validation split),
    bbc-news does not; a user's file does not unless asked."""
    from grutune.data.datasets import get_dataset
    assert get_dataset("fine-food-reviews").defaults["stem"] is True
    assert get_dataset("bbc-news").defaults.get("stem", False) is False
    assert _prepare(tmp_path, make_texts(10)).state["stem"] is False


def test_encode_truncates_and_maps_unknown():
    vocab = ["<pad>", "<unk>", "a", "b"]
    x, lengths = encode_docs([["a", "b", "zzz", "a"], [], ["b"]], vocab, max_len=3)
    assert x.tolist() == [[2, 3, 1], [1, 0, 0], [3, 0, 0]]
    assert lengths.tolist() == [3, 1, 1]


def test_vocab_tie_order_is_deterministic():
    assert build_vocab([["z", "y"], ["y", "z"]], 1, 10) == ["<pad>", "<unk>", "y", "z"]
    assert build_vocab([["a"] * 3 + ["b"] * 2 + ["c"]], 1, 2)[2:] == ["a", "b"]


def _prepare(tmp_path, frame, **kw):
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    return get_task("text").prepare(DataConfig(path=str(path), **kw))


def test_split_is_stratified_70_15_15_and_disjoint(tmp_path):
    prep = _prepare(tmp_path, make_texts(40))
    split = prep.split
    assert [len(split[k]) for k in ("train", "val", "test")] == [84, 18, 18]
    assert not set(split["train"]) & set(split["test"])
    assert not set(split["val"]) & set(split["test"])
    assert not set(split["train"]) & set(split["val"])
    for part in ("val", "test"):  # 6 of each of the 3 classes
        assert sorted(prep.summary["class_counts"][part].values()) == [6, 6, 6]


def test_vocabulary_comes_from_training_split_only(tmp_path):
    """With min_count 1 every training token is in the vocabulary and no token that only
    validation or test documents hold is (each document ends in its own random number)."""
    frame = make_texts(40)
    prep = _prepare(tmp_path, frame, min_count=1)
    tokens = {part: set() for part in ("train", "val", "test")}
    parts = {row: part for part in tokens for row in prep.split[part]}
    for text in frame["text"]:
        cleaned = clean_text(text)
        tokens[parts[row_id(cleaned)]] |= set(tokenize(cleaned, False))
    held_out_only = (tokens["val"] | tokens["test"]) - tokens["train"]
    assert held_out_only, "held-out documents must hold tokens unseen in training"
    vocab = set(prep.state["vocab"])
    assert not held_out_only & vocab
    assert tokens["train"] <= vocab


def test_duplicates_and_empty_texts_are_dropped(tmp_path, caplog):
    frame = make_texts(20)
    frame = pd.concat([frame, frame.iloc[:5], pd.DataFrame({"text": ["", "  "],
                                                             "label": ["tech", "food"]})])
    prep = _prepare(tmp_path, frame)
    assert prep.summary["duplicates_removed"] == 5
    assert prep.summary["empty_removed"] == 2
    assert sum(prep.summary["rows"].values()) == 60


def test_saved_split_is_reused_even_when_rows_are_reordered(tmp_path):
    frame = make_texts(30)
    first = _prepare(tmp_path, frame)
    path = tmp_path / "shuffled.csv"
    frame.sample(frac=1, random_state=3).to_csv(path, index=False)
    again = get_task("text").prepare(DataConfig(path=str(path)), saved_split=first.split)
    assert again.split == first.split
    assert again.test.x.tolist() == first.test.x.tolist()


def test_saved_split_with_missing_rows_is_an_error(tmp_path):
    frame = make_texts(30)
    first = _prepare(tmp_path, frame)
    path = tmp_path / "fewer.csv"
    frame.iloc[:60].to_csv(path, index=False)
    with pytest.raises(DataError, match="no longer matches"):
        get_task("text").prepare(DataConfig(path=str(path)), saved_split=first.split)


def test_user_test_file_is_the_test_split(tmp_path):
    frame = make_texts(40)
    train, test = frame.iloc[:90], frame.iloc[90:]
    test.to_csv(tmp_path / "test.csv", index=False)
    prep = _prepare(tmp_path, train, test_path=str(tmp_path / "test.csv"))
    assert len(prep.split["test"]) == len(test)
    assert len(prep.split["val"]) == round(0.15 * 90)


def test_integer_labels_keep_their_type(tmp_path):
    frame = make_texts(20)
    frame["label"] = frame["label"].map({"sport": 10, "tech": 2, "food": 7})
    prep = _prepare(tmp_path, frame)
    assert prep.state["labels"] == ["2", "7", "10"]
    table = get_task("text").decode(prep.test.x.new_zeros(3, 3).float(), prep.state)
    assert table["prediction"].tolist() == [2, 2, 2]
    assert list(table.columns) == ["prediction", "prob_2", "prob_7", "prob_10"]


def test_text_space_starts_from_a_three_epoch_average_and_other_tasks_do_not():
    """The trailing checkpoint average is a text factor (measured on both text
    built-ins); series and forecasts keep each epoch's own weights."""
    text = get_task("text").default_space({})
    assert text["average"].choices == (1, 3)
    assert train_config({p.name: p.default for p in text.params.values()}, 10, 0).average == 3
    series = get_task("series").default_space({"length": 100})
    assert series["average"].kind == "fixed"  # off, unless a space file searches it
    assert train_config({p.name: p.default for p in series.params.values()}, 10, 0).average == 1
