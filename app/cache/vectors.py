"""TF-IDF vectors of prompts without a vocabulary to refit.

Features are the prompt's normalised content words (units by one name: km, kilometres) and
adjacent pairs of them, each pair in either order (a compound such as "git branch" counts
whether written "git branch" or "branch in git"; whether a reordering changes what is asked
is the near-miss guard's call, made on the words themselves), hashed into 2^20 columns by
scikit-learn's HashingVectorizer, so a new prompt never changes the columns of the old ones.
IDF weights come from document frequencies kept up to date as prompts are added and removed:
smooth IDF, log((1 + n) / (1 + df)) + 1, as TfidfTransformer.

scikit-learn is imported when the first Vectorizer is built (~1.5 s): only semantic mode pays,
and under gunicorn's preload it is paid once in the master.
"""
from __future__ import annotations

import numpy as np

from app.cache.lexicon import FUNCTION_WORDS, NEGATIONS, UNITS
from app.cache.text import norms

N_FEATURES = 2 ** 20


def features(text: str) -> list[str]:
    """Content words and adjacent pairs of them. Function and request words are left out:
    two prompts differing only in them ask the same thing ("How can I delete a git branch?"
    and "How do I delete a git branch?"), and the near-miss guard, not the score, checks
    everything else that could tell them apart."""
    found = [UNITS.get(word, word) for word in norms(text) if word not in FUNCTION_WORDS]
    # A negation is a word of its own, outside the pairs: "does it not start" and "doesn't
    # it start" put it in different places (the guard compares how many there are).
    paired = [word for word in found if word not in NEGATIONS]
    return found + [f"{a} {b}" if a < b else f"{b} {a}" for a, b in zip(paired, paired[1:])]


class Vectorizer:
    def __init__(self):
        from sklearn.feature_extraction.text import HashingVectorizer

        self._hasher = HashingVectorizer(analyzer=features, n_features=N_FEATURES,
                                         alternate_sign=False, norm=None, dtype=np.float32)
        self.df = np.zeros(N_FEATURES, dtype=np.int32)
        self.documents = 0

    def counts(self, texts: list[str]):
        """Feature counts, one CSR row per text."""
        rows = self._hasher.transform(texts)
        rows.sort_indices()
        return rows

    def learn(self, columns: np.ndarray, documents: int) -> None:
        """Count documents (their features' columns, together) into the frequencies."""
        np.add.at(self.df, columns, 1)
        self.documents += documents

    def forget(self, columns: np.ndarray) -> None:
        """Take one document's features back out."""
        np.subtract.at(self.df, columns, 1)
        self.documents -= 1

    def idf(self, columns: np.ndarray) -> np.ndarray:
        return (np.log((1.0 + self.documents) / (1.0 + self.df[columns])) + 1.0).astype(np.float32)

    def weigh(self, rows):
        """TF-IDF rows under the current IDF, each scaled to unit length."""
        weighted = rows.copy()
        weighted.data *= self.idf(weighted.indices)
        sizes = np.diff(weighted.indptr)
        lengths = np.ones(weighted.shape[0], dtype=np.float32)
        filled = sizes > 0
        if weighted.nnz:
            # reduceat sums each filled row: from its first entry up to the next filled row's
            lengths[filled] = np.sqrt(np.add.reduceat(weighted.data ** 2,
                                                      weighted.indptr[:-1][filled]))
        lengths[lengths == 0] = 1.0
        weighted.data /= np.repeat(lengths, sizes)
        return weighted
