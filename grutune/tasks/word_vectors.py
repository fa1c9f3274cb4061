"""Word vectors trained on the training split's own text, to start a text model from.

A GRU trained from scratch on a few thousand documents learns its embedding from the
labels alone, and a word seen in a handful of training documents stays near its random
start. Skip-gram word2vec (gensim) trained on the same training documents, without
their labels, places such words near the words they occur with, which the classifier
then generalizes from: on BBC News this lifted a fixed bi-GRU from 95.3% to 96.5% test
accuracy, 3 seeds (``bench/RESULTS.md``, issue 17). Nothing is downloaded: the vectors
come from the training split only (never validation or test text), so they leak nothing.

The vectors are trained once per study, at the widest embedding the search may choose;
narrower embeddings take the leading principal components of the same vectors, so every
trial starts from one table. A table is scaled to unit variance per column, like the
N(0, 1) rows of a fresh ``nn.Embedding``; ``<pad>`` stays zero and words too rare for
word2vec keep random rows.

>>> docs = [["the", "cat", "sat"], ["the", "dog", "sat"]] * 20
>>> table = train_vectors(docs, ["<pad>", "<unk>", "the", "sat", "cat", "dog"], 8, seed=0)
>>> table.shape, bool((table[0] == 0).all()), bool(table.known[1])
((6, 8), True, False)
>>> project(table, 4).shape
(6, 4)
"""

from __future__ import annotations

import logging
import time
import zlib

import numpy as np

log = logging.getLogger("grutune")

WINDOW = 5
EPOCHS = 10
MIN_COUNT = 2


class WordTable(np.ndarray):
    """A [vocab, dim] float32 table with ``known``: [vocab] bool, rows word2vec learned."""

    known: np.ndarray


def _stable_hash(text: str) -> int:
    # gensim can seed a word's vector with hashfxn(word + seed); Python's own str hash
    # changes per process (PYTHONHASHSEED), which would make seeded runs differ.
    return zlib.crc32(text.encode())


def train_vectors(docs: list[list[str]], vocab: list[str], dim: int, seed: int) -> WordTable:
    """Skip-gram vectors for ``vocab`` (row order kept) from ``docs`` (tokenized training
    text). One worker thread, so the same documents and seed give the same table."""
    from gensim.models import Word2Vec  # heavy import, only when a text study needs it

    start = time.perf_counter()
    w2v = Word2Vec(docs, vector_size=dim, window=WINDOW, min_count=MIN_COUNT, sg=1,
                   epochs=EPOCHS, workers=1, seed=seed, hashfxn=_stable_hash)
    table = np.zeros((len(vocab), dim), dtype=np.float32)
    known = np.zeros(len(vocab), dtype=bool)
    for row, word in enumerate(vocab):
        if row >= 2 and word in w2v.wv.key_to_index:  # rows 0, 1: <pad>, <unk>
            table[row] = w2v.wv[word]
            known[row] = True
    log.info("word2vec: %d of %d words, %d-d, %.1f s", int(known.sum()), len(vocab), dim,
             time.perf_counter() - start)
    out = table.view(WordTable)
    out.known = known
    return out


def project(table: WordTable, dim: int) -> np.ndarray:
    """The table's first ``dim`` principal components (all of it when ``dim`` is its
    width), centred and scaled to unit variance over the known rows; other rows zero.
    ``initialize`` fills the unknown rows (but ``<pad>``) with random N(0, 1) values."""
    known = table.known
    base = np.asarray(table, dtype=np.float64)
    if not known.any():
        return np.zeros((len(base), dim), dtype=np.float32)
    centred = base - base[known].mean(axis=0)
    if dim < base.shape[1]:
        _, _, vt = np.linalg.svd(centred[known], full_matrices=False)  # vt: [dim0, dim0]
        centred = centred @ vt[:dim].T  # [vocab, min(dim, known rows)]
        # fewer known words than dims: the missing components are zero
        centred = np.pad(centred, ((0, 0), (0, dim - centred.shape[1])))
    centred /= max(float(centred[known].std()), 1e-12)
    centred[~known] = 0.0
    return centred.astype(np.float32)
