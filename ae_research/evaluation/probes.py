"""How good are the codes? scikit-learn baselines and probes on host arrays.

- PCA at the code's dimension: the linear baseline of SPEC 1's compression claim;
- linear probe (logistic regression) and k-NN accuracy, on codes and on raw pixels;
- retrieval: precision@k of cosine-distance nearest neighbours, labels as relevance (SPEC 3c).
"""
from typing import Dict, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def pca_reconstruction_mse(train: np.ndarray, test: np.ndarray, dim: int, max_train: int = 20_000,
                           seed: int = 0) -> float:
  """Test MSE of the best rank-`dim` linear reconstruction (PCA fitted on training data)."""
  train, test = train.reshape(len(train), -1), test.reshape(len(test), -1)
  rows = np.random.default_rng(seed).permutation(len(train))[:max_train]
  pca = PCA(n_components=dim, random_state=seed).fit(train[rows])
  return float(np.mean(np.square(pca.inverse_transform(pca.transform(test)) - test)))


def _subset(x, y, limit, seed):
  rows = np.random.default_rng(seed).permutation(len(x))[:limit]
  return x[rows].reshape(len(rows), -1), y[rows]


def linear_probe_accuracy(train_x, train_y, test_x, test_y, max_train: int = 10_000, seed: int = 0) -> float:
  x, y = _subset(train_x, train_y, max_train, seed)
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
  return float(probe.fit(x, y).score(test_x.reshape(len(test_x), -1), test_y))


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 5, max_train: int = 10_000, seed: int = 0) -> float:
  x, y = _subset(train_x, train_y, max_train, seed)
  knn = KNeighborsClassifier(n_neighbors=k).fit(x, y)
  return float(knn.score(test_x.reshape(len(test_x), -1), test_y))


def knn_regression_r2(codes: np.ndarray, values: np.ndarray, k: int = 10, seed: int = 0) -> float:
  """R^2 of k-NN regression of `values` from codes (fit on one half, scored on the other):
  near 1 when the codes order the examples by that value, however non-linearly."""
  rows = np.random.default_rng(seed).permutation(len(codes))
  fit, score = rows[: len(rows) // 2], rows[len(rows) // 2:]
  model = KNeighborsRegressor(n_neighbors=k).fit(codes[fit].reshape(len(fit), -1), values[fit])
  return float(model.score(codes[score].reshape(len(score), -1), values[score]))


def cosine_neighbours(codes: np.ndarray, queries: np.ndarray, k: int):
  """Indices and cosine distances of the k nearest codes to each query index (itself excluded)."""
  unit = codes / np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-12)
  sims = unit[queries] @ unit.T
  sims[np.arange(len(queries)), queries] = -np.inf
  order = np.argsort(-sims, axis=1)[:, :k]
  return order, 1.0 - np.take_along_axis(sims, order, axis=1)


def retrieval_precision(codes: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 4, 10),
                        num_queries: int = 1000, seed: int = 0) -> Dict[int, float]:
  queries = np.random.default_rng(seed).permutation(len(codes))[:num_queries]
  neighbours, _ = cosine_neighbours(codes.reshape(len(codes), -1), queries, max(ks))
  hits = labels[neighbours] == labels[queries][:, None]
  return {k: float(hits[:, :k].mean()) for k in ks}
