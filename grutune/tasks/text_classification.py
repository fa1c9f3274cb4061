"""Text classification: documents with labels -> token ids -> a GRU classifier.

Preparation, in order: read the file (or built-in dataset; the text and label columns
as the user wrote them: ``NA`` is a document or a label, ``007`` stays ``007``) -> clean
(HTML tags and entities, lower case, whitespace) -> drop empty texts -> drop exact duplicates (and
training rows whose text is in the test part) -> optional stratified sample -> stratified
70/15/15 split (or the saved one) -> vocabulary and maximum length from the *training*
split only -> padded id tensors. Tokens are optionally stripped of English stop words
and reduced to their Snowball stems (``--stem``), before the vocabulary and at prediction.

>>> clean_text("<p>Great&nbsp;food!</p>  <br/>Really.")
'great food! really.'
>>> tokenize("don't stop: 4 stars", stop_words=False)
["don't", 'stop', '4', 'stars']
>>> tokenize("loved the tasty cookies", stop_words=False, stem=True)
['love', 'the', 'tasti', 'cooki']
"""

from __future__ import annotations

import functools
import hashlib
import html
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import snowballstemmer
import torch

from grutune.config import CELLS, INITS, POOLINGS, DataConfig, ModelConfig
from grutune.data.cache import SequenceData
from grutune.data.datasets import get_dataset
from grutune.data.readers import read_table, require_columns, typed_format
from grutune.exceptions import DataError
from grutune.manifest_checks import Checker, is_int, is_str_list
from grutune.search_space import (
    AVERAGES,
    UNIT,
    Param,
    Space,
    choice_param,
    fixed_param,
    float_param,
    training_params,
    with_params,
)
from grutune.tasks.base import (
    ClassificationTask,
    Prepared,
    check_classes,
    label_state,
    read_labels,
    restore_label_type,
    stratified_sample,
    stratified_split,
    warn_similar_labels,
)
from grutune.tasks.baselines import Baseline, tfidf_logistic
from grutune.tasks.word_vectors import WordTable, project, train_vectors

log = logging.getLogger("grutune")

PAD, UNK = "<pad>", "<unk>"
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
MIN_ROWS = 20
MIN_AUTO_LEN = 8
EMBEDDINGS = ("word2vec", "random")  # how a trial's embedding starts (word_vectors.py)
WIDEST_EMBED = 256


def clean_text(text: str) -> str:
    """Strip HTML tags and entities, lower-case, collapse whitespace."""
    text = html.unescape(_TAG.sub(" ", text))
    return _SPACE.sub(" ", text).strip().lower()


def tokenize(cleaned: str, stop_words: bool, stem: bool = False) -> list[str]:
    """Regex word tokens of cleaned text; scikit-learn's English stop words removed and the
    rest reduced to their English Snowball (Porter 2) stems, each if asked."""
    return _tokens(cleaned, _stop_words() if stop_words else frozenset(), stem)


def _tokens(cleaned: str, stop: frozenset[str], stem: bool) -> list[str]:
    tokens = TOKEN.findall(cleaned)
    if stop:
        tokens = [t for t in tokens if t not in stop]
    return _stemmer().stemWords(tokens) if stem else tokens


def state_tokenizer(state: dict) -> Callable[[str], list[str]]:
    """``tokenize`` with the preparation a fitted state recorded: the stop words it
    removed are the state's own list, so a bundle tokenizes as it did when it was made
    whatever scikit-learn's list becomes (a bundle from before the list was stored uses
    scikit-learn's; one from before ``--stem`` has no "stem": no stems).

    >>> state_tokenizer({"stop_words": True, "stop_word_list": ["the"], "stem": True})(
    ...     "the dogs ran")
    ['dog', 'ran']
    """
    if not state["stop_words"]:
        stop: frozenset[str] = frozenset()
    elif "stop_word_list" in state:
        stop = frozenset(state["stop_word_list"])
    else:
        stop = _stop_words()
    stem = state.get("stem", False)
    return lambda cleaned: _tokens(cleaned, stop, stem)


@functools.cache
def _stop_words() -> frozenset[str]:
    """scikit-learn's English stop words, imported when first needed (predicting with a
    model that keeps stop words needs none of scikit-learn)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


@functools.cache
def _stemmer() -> snowballstemmer.stemmer:
    """The Snowball library's English stemmer (it caches stems of frequent words)."""
    return snowballstemmer.stemmer("english")


def build_vocab(docs: list[list[str]], min_count: int, max_size: int) -> list[str]:
    """<pad>, <unk>, then tokens by descending count (ties alphabetical), from ``docs`` only.

    >>> build_vocab([["b", "a", "b"], ["a", "c"]], min_count=2, max_size=10)
    ['<pad>', '<unk>', 'a', 'b']
    """
    counts = Counter(t for doc in docs for t in doc)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return [PAD, UNK] + kept[:max_size]


def encode_docs(docs: list[list[str]], vocab: list[str], max_len: int) -> tuple[torch.Tensor,
                                                                                 torch.Tensor]:
    """Right-padded ids [N, L] (L = longest kept length) and lengths [N] (>= 1).

    Documents keep their first ``max_len`` tokens; an empty one becomes a single <unk>.
    """
    index = {t: i for i, t in enumerate(vocab)}
    ids = [[index.get(t, 1) for t in doc[:max_len]] or [1] for doc in docs]
    lengths = np.array([len(d) for d in ids], dtype=np.int64)
    x = np.zeros((len(ids), int(lengths.max(initial=1))), dtype=np.int64)
    for row, doc in enumerate(ids):
        x[row, :len(doc)] = doc
    return torch.from_numpy(x), torch.from_numpy(lengths)


def row_id(cleaned: str) -> str:
    """Stable id of a document: split.json stores these, not positions."""
    return hashlib.sha1(cleaned.encode()).hexdigest()[:16]


@dataclass
class _Source:
    pool: pd.DataFrame  # rows to split
    test: pd.DataFrame | None  # a published or user-given test part
    name: str  # for messages: the file or dataset name
    text: str  # column names
    target: str
    stop_words: bool
    stem: bool = False
    typed: bool = False  # labels of a typed format (Parquet, JSON Lines) keep their type


def read_text_table(path: str, text: str, target: str | None) -> pd.DataFrame:
    """A table with the text (and label) column as written; nested values refused."""
    columns = [text] + ([target] if target else [])
    flat = {text: "the text column must hold strings"}
    if target:
        flat[target] = "a label must be text or a number"
    return read_table(path, as_written=columns, flat=flat)


def _load(cfg: DataConfig) -> _Source:
    if cfg.path is None:
        ds = get_dataset(cfg.dataset)
        if ds.task != "text":
            raise DataError(f"--dataset {ds.name}: a {ds.task} dataset, not text")
        pool, test = ds.loader()
        return _Source(pool, test, ds.name, cfg.text_column or ds.text_column,
                       cfg.target_column or ds.target_column,
                       _switch(cfg, "stop_words", ds.defaults), _switch(cfg, "stem", ds.defaults))
    text, target = cfg.text_column or "text", cfg.target_column or "label"
    pool = read_text_table(cfg.path, text, target)
    test = read_text_table(cfg.test_path, text, target) if cfg.test_path else None
    return _Source(pool, test, cfg.path, text, target, _switch(cfg, "stop_words"),
                   _switch(cfg, "stem"), typed=typed_format(cfg.path))


def _switch(cfg: DataConfig, name: str, defaults: dict | None = None) -> bool:
    """A preparation switch (``stop_words``, ``stem``): as given, else the built-in
    dataset's default, else off."""
    value = getattr(cfg, name)
    return bool((defaults or {}).get(name, False) if value is None else value)


def _clean_rows(frame: pd.DataFrame, src: _Source, name: str, counts: dict) -> pd.DataFrame:
    """[id, raw, text, label, label_value]: cleaned, empty texts and exact duplicates dropped.

    ``label`` is the class name (the label as written), ``label_value`` the label with its
    type from the file. The numbers dropped are added to ``counts`` (empty_removed,
    duplicates_removed).
    """
    require_columns(frame, [src.text, src.target], name)
    names, values = read_labels(frame[src.target], name, src.target)
    missing = np.array([n is None for n in names], dtype=bool)
    if missing.any():
        first = int(np.flatnonzero(missing)[0]) + 1
        raise DataError(f"{name}: target column {src.target!r} has {int(missing.sum())} missing "
                        f"values (first at data row {first}); every row needs a label")
    warn_similar_labels(names, name, src.target)
    raw = frame[src.text].astype(object).where(frame[src.text].notna(), "").astype(str)
    rows = pd.DataFrame({"raw": raw, "text": raw.map(clean_text),
                         "label": pd.Series(names, index=frame.index, dtype=object),
                         "label_value": pd.Series(values, index=frame.index, dtype=object)})
    empty = rows["text"] == ""
    if empty.any():
        log.warning("%s: dropped %d rows with empty text in column %r", name, int(empty.sum()),
                    src.text)
        rows = rows[~empty]
    counts["empty_removed"] = counts.get("empty_removed", 0) + int(empty.sum())
    dup = rows["text"].duplicated()
    if dup.any():
        log.warning("%s: removed %d exact duplicate documents (same cleaned text)", name,
                    int(dup.sum()))
        rows = rows[~dup]
    counts["duplicates_removed"] = counts.get("duplicates_removed", 0) + int(dup.sum())
    rows.insert(0, "id", rows["text"].map(row_id))
    if len(rows) < MIN_ROWS:
        raise DataError(f"{name}: {len(rows)} usable rows in column {src.text!r}; "
                        f"need at least {MIN_ROWS}")
    return rows.reset_index(drop=True)


def _assign(rows: dict[str, pd.DataFrame], saved: dict, name: str) -> dict[str, pd.DataFrame]:
    """The saved split's rows, looked up by id; fail if the data no longer holds them."""
    everything = pd.concat(rows.values()).drop_duplicates("id").set_index("id")
    parts = {}
    for split in ("train", "val", "test"):
        ids = saved[split]
        missing = [i for i in ids if i not in everything.index]
        if missing:
            raise DataError(f"{name}: the data no longer matches the study's split.json "
                            f"({len(missing)} saved {split} rows are gone); use a new --study "
                            "or --run-dir")
        parts[split] = everything.loc[ids].reset_index()
    return parts


def text_params() -> list[Param]:
    """Architecture factors of a text classifier: a token embedding into the GRU."""
    return [
        fixed_param("cell", "gru", allowed=CELLS),
        fixed_param("embedding", "word2vec", allowed=EMBEDDINGS),
        choice_param("embed_dim", [64, 128, WIDEST_EMBED], 128, bounds=(1, math.inf)),
        choice_param("hidden_size", [32, 64, 128], 64, bounds=(1, math.inf)),
        choice_param("num_layers", [1, 2], 1, bounds=(1, 8)),
        choice_param("bidirectional", [False, True], True, allowed=(False, True)),
        float_param("layer_dropout", 0.0, 0.5, 0.2,
                    when=(("num_layers", (2, 3, 4, 5, 6, 7, 8)),), bounds=UNIT),
        choice_param("pooling", list(POOLINGS), "mean", allowed=POOLINGS),
        float_param("dropout", 0.0, 0.5, 0.2, bounds=UNIT),
        choice_param("init", list(INITS), "xavier", allowed=INITS),
    ]


def _word2vec(prepared: Prepared, dim: int, seed: int) -> WordTable:
    """Train the training split's word vectors into ``prepared.pretrained``."""
    if prepared.raw is None:
        raise RuntimeError("word2vec needs the prepared training texts (Prepared.raw)")
    tokens = state_tokenizer(prepared.state)
    docs = [tokens(t) for t in prepared.raw["train"]]
    table = train_vectors(docs, prepared.state["vocab"], dim, seed)
    prepared.pretrained["word2vec"] = table
    return table


def _vector_width(space: Space | None) -> int:
    """The widest embedding a trial may start from word2vec vectors (0: none may)."""
    if space is None or "embedding" not in space.names:
        return 0
    if "word2vec" not in (space["embedding"].choices or (space["embedding"].default,)):
        return 0
    width = space["embed_dim"]
    return int(max((width.high,) if width.kind in ("int", "float") else
                   width.choices or (width.default,)))


class TextClassification(ClassificationTask):
    """Documents -> labels."""

    name = "text"
    options = frozenset({"text_column", "target_column", "stop_words", "stem", "min_count",
                         "max_vocab", "max_len", "len_percentile"})

    @classmethod
    def check_state(cls, state: dict, config: ModelConfig, check: Checker) -> None:
        super().check_state(state, config, check)
        vocab = state.get("vocab")
        check.require(is_str_list(vocab), "state.vocab", "a list of strings", vocab)
        check.require(len(vocab) == config.vocab_size and config.vocab_size >= 2, "state.vocab",
                      f"as long as the model's vocabulary ({config.vocab_size})", len(vocab))
        max_len = state.get("max_len", 1)
        check.require(is_int(max_len) and max_len >= 1, "state.max_len", "a whole number >= 1",
                      max_len)
        for key in ("stop_words", "stem"):  # a bundle from before --stem has no "stem"
            check.require(isinstance(state.get(key, False), bool), f"state.{key}",
                          "true or false", state.get(key))
        if "stop_word_list" in state:
            check.require(is_str_list(state["stop_word_list"]), "state.stop_word_list",
                          "a list of strings", state["stop_word_list"])
        check.require(isinstance(state.get("text_column", ""), str), "state.text_column",
                      "a string", state.get("text_column"))

    def describe_inputs(self, summary: dict) -> tuple[str, list[str]]:
        notes = [note for key, note in (("stop_words", "English stop words removed"),
                                        ("stem", "words reduced to their Snowball stems"))
                 if summary.get(key)]
        return f"vocabulary {summary['vocab_size']:,}, max length {summary.get('max_len')}", notes

    def default_space(self, context: dict) -> Space:
        """A token embedding into the GRU, with the shared training factors.

        >>> TextClassification().default_space({})["embed_dim"].choices
        (64, 128, 256)
        """
        # a trailing checkpoint average, searched for text only: measured better on
        # fine-food's validation and level on bbc-news' (bench/RESULTS.md)
        return Space(text_params() + with_params(
            training_params(), average=choice_param("average", [1, 3], 3, bounds=AVERAGES)))

    def prepare(self, cfg: DataConfig, saved_split: dict | None = None,
                space: Space | None = None) -> Prepared:
        src = _load(cfg)
        summary: dict = {"source": src.name, "raw_rows": len(src.pool) + (
            len(src.test) if src.test is not None else 0)}
        pool = _clean_rows(src.pool, src, src.name, summary)
        test = (_clean_rows(src.test, src, cfg.test_path or f"{src.name} (test)", summary)
                if src.test is not None else None)
        if test is not None:
            overlap = pool["id"].isin(set(test["id"]))
            if overlap.any():
                log.warning("%s: removed %d training rows whose text is also in the test part",
                            src.name, int(overlap.sum()))
                pool = pool[~overlap].reset_index(drop=True)
            summary["test_overlap_removed"] = int(overlap.sum())
        if saved_split is not None:
            parts = _assign({"pool": pool, **({"test": test} if test is not None else {})},
                            saved_split, src.name)
        else:
            parts = self._split(pool, test, cfg, src)
        return self._tensorize(parts, cfg, src, summary)

    def pretrain(self, prepared: Prepared, space: Space, seed: int) -> None:
        """Word2vec vectors of the training text, when the space lets trials start from
        them, at the widest embedding it allows (``word_vectors.py``)."""
        dim = _vector_width(space)
        if dim:
            _word2vec(prepared, dim, seed)

    def _split(self, pool: pd.DataFrame, test: pd.DataFrame | None, cfg: DataConfig,
               src: _Source) -> dict[str, pd.DataFrame]:
        if cfg.sample is not None:
            share = len(pool) / (len(pool) + (len(test) if test is not None else 0))
            pool = stratified_sample(pool, max(MIN_ROWS, round(cfg.sample * share)), cfg.seed,
                                     src.name)
            if test is not None:
                test = stratified_sample(test, max(MIN_ROWS, cfg.sample - len(pool)), cfg.seed,
                               cfg.test_path or src.name)
        check_classes(pool["label"], src.name, src.target)
        pos = stratified_split(pool["label"].to_numpy(), cfg, test is not None, src.name)
        parts = {k: pool.iloc[v].reset_index(drop=True) for k, v in pos.items()}
        if test is not None:
            parts["test"] = test
        return parts

    def _tensorize(self, parts: dict[str, pd.DataFrame], cfg: DataConfig, src: _Source,
                   summary: dict) -> Prepared:
        every = pd.concat(list(parts.values()))
        labels_state = label_state(every["label"].tolist(), every["label_value"].tolist(),
                                   src.typed)
        labels = labels_state["labels"]
        unseen = set(parts["test"]["label"]) - set(parts["train"]["label"])
        if unseen:
            raise DataError(f"{src.name}: test labels {sorted(unseen)} never occur in the "
                            f"training part of column {src.target!r}")
        # what predict reads back from the state, so both tokenize through one function
        preparation = {"stop_words": src.stop_words, "stem": src.stem}
        if src.stop_words:  # the list itself: a bundle must not change with scikit-learn's
            preparation["stop_word_list"] = sorted(_stop_words())
        tokens = state_tokenizer(preparation)
        docs = {k: list(map(tokens, p["text"])) for k, p in parts.items()}
        vocab = build_vocab(docs["train"], cfg.min_count, cfg.max_vocab)
        if len(vocab) <= 2:  # only <pad> and <unk>: every text would read as unknown words
            raise DataError(f"{src.name}: --min-count {cfg.min_count}: no token of column "
                            f"{src.text!r} occurs that often in the training part, so the "
                            "vocabulary would be empty; lower --min-count")
        train_lengths = np.array([max(len(d), 1) for d in docs["train"]])
        max_len = cfg.max_len or max(MIN_AUTO_LEN, int(np.ceil(
            np.percentile(train_lengths, cfg.len_percentile))))
        label_id = {n: i for i, n in enumerate(labels)}
        data = {}
        for k, p in parts.items():
            x, lengths = encode_docs(docs[k], vocab, max_len)
            y = torch.tensor([label_id[v] for v in p["label"]], dtype=torch.long)
            data[k] = SequenceData(x, lengths, y)
        state = {"task": self.name, "text_column": src.text, "target_column": src.target,
                 **labels_state, "vocab": vocab, "max_len": max_len, **preparation}
        summary.update({
            "rows": {k: len(p) for k, p in parts.items()},
            "class_counts": {k: p["label"].value_counts().sort_index().to_dict()
                             for k, p in parts.items()},
            "vocab_size": len(vocab), "max_len": max_len,
            "truncated_train_fraction": float((train_lengths > max_len).mean()),
            "stop_words": src.stop_words, "stem": src.stem,
        })
        split = {k: p["id"].tolist() for k, p in parts.items()}
        test_frame = pd.DataFrame({
            "id": parts["test"]["id"], src.text: parts["test"]["raw"],
            src.target: pd.Series(restore_label_type(parts["test"]["label"].tolist(), state),
                                  index=parts["test"].index, dtype=object)})
        return Prepared(data["train"], data["val"], data["test"], state, split, summary,
                        test_frame, raw={k: p["text"].tolist() for k, p in parts.items()})

    def baseline(self, prepared: Prepared, seed: int, refit: bool = False) -> Baseline | None:
        """TF-IDF + logistic regression on the cleaned texts (``baselines.tfidf_logistic``)."""
        if prepared.raw is None:
            return None
        y = {k: getattr(prepared, k).y for k in ("train", "val", "test")}
        return tfidf_logistic(prepared.raw, y, len(prepared.state["labels"]),
                              self.scoring(prepared.state), seed, refit)

    def initialize(self, model: torch.nn.Module, params: dict, prepared: Prepared) -> None:
        """``embedding: word2vec``: the embedding's rows of words word2vec learned become
        their vectors (projected to ``embed_dim``); other rows keep their seeded start."""
        if params.get("embedding", "random") != "word2vec":
            return
        table = prepared.pretrained.get("word2vec")
        if not isinstance(table, WordTable) or table.shape[1] < params["embed_dim"]:
            # a trial outside ``tune`` (which pretrains once, before trials): train now
            table = _word2vec(prepared, max(params["embed_dim"], WIDEST_EMBED), seed=0)
        vectors = torch.from_numpy(project(table, params["embed_dim"]))  # [vocab, embed_dim]
        known = torch.from_numpy(table.known)
        with torch.no_grad():
            model.embed.weight[known] = vectors[known]

    def model_config(self, params: dict, state: dict) -> ModelConfig:
        return ModelConfig(
            num_outputs=len(state["labels"]), vocab_size=len(state["vocab"]),
            embed_dim=params["embed_dim"], cell=params["cell"],
            hidden_size=params["hidden_size"], num_layers=params["num_layers"],
            bidirectional=params["bidirectional"],
            layer_dropout=params.get("layer_dropout", 0.0), pooling=params["pooling"],
            dropout=params["dropout"], init=params["init"])

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """A file to predict, its text column as written (``NA`` is a document)."""
        return read_text_table(path, state["text_column"], None)

    def encode(self, frame: pd.DataFrame, state: dict, source: str) -> SequenceData:
        column = state["text_column"]
        require_columns(frame, [column], source)
        texts = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
        texts = texts.map(clean_text)
        empty = np.flatnonzero(texts.str.len().to_numpy() == 0)
        if len(empty):  # training dropped such rows; an answer here would be made up
            raise DataError(f"{source}: text column {column!r} is empty in data row "
                            f"{int(empty[0]) + 1} ({len(empty)} such rows); every row to "
                            "predict needs a text")
        docs = list(map(state_tokenizer(state), texts))
        x, lengths = encode_docs(docs, state["vocab"], state["max_len"])
        return SequenceData(x, lengths, torch.zeros(len(docs), dtype=torch.long))
