"""How many speakers, and which windows are whose: spectral clustering with a self-tuned graph.

Pure numpy/scipy/scikit-learn, no Celery. NME-SC (Park et al., "Auto-Tuning Spectral
Clustering for Speaker Diarization Using Normalized Maximum Eigengap", IEEE SPL 2019,
https://arxiv.org/abs/2003.02405): each row of the cosine affinity matrix keeps its
``p`` most similar windows (binarised), the graph is symmetrised, and the count is the
position of the largest gap in its Laplacian's smallest eigenvalues. ``p`` is the one
whose largest gap, normalised by the largest eigenvalue, is widest for its size
(the least ``p / g_p``). The windows are then clustered by k-means on the eigenvectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Spectral", "binarised", "count_and_labels", "eigengap_count", "laplacian"]

#: The most windows the graph is built on; a longer file's windows are sampled evenly
#: (the eigen-decomposition grows as the cube), the rest take their nearest centroid.
MAX_GRAPH_WINDOWS = 800
#: The largest ``p`` tried, as a fraction of the windows (NME-SC's search range).
MAX_NEIGHBOUR_FRACTION = 0.25
#: Small recordings (few windows) still try up to this many neighbours.
MIN_NEIGHBOURS_TRIED = 12
#: At most this many values of ``p`` are tried (evenly spread).
NEIGHBOUR_STEPS = 20


@dataclass(frozen=True)
class Spectral:
    """What the search found: the count, the ``p`` it was found with, and its normalised gap."""

    count: int
    neighbours: int
    gap: float


def binarised(affinity: np.ndarray, neighbours: int) -> np.ndarray:
    """Each row's ``neighbours`` largest entries set to 1, the rest 0, then symmetrised."""
    n = len(affinity)
    keep = np.argpartition(-affinity, min(neighbours, n - 1), axis=1)[:, :neighbours]
    graph = np.zeros_like(affinity)
    graph[np.arange(n)[:, None], keep] = 1.0
    return (graph + graph.T) / 2


def laplacian(graph: np.ndarray) -> np.ndarray:
    """The unnormalised graph Laplacian ``D - A``."""
    return np.diag(graph.sum(axis=1)) - graph


def eigengap_count(eigenvalues: np.ndarray, highest: int, lowest: int = 1) -> tuple[int, float]:
    """The count at the largest gap among the smallest ``highest + 1`` eigenvalues (ascending), and
    that gap over the largest eigenvalue."""
    gaps = np.diff(eigenvalues[: highest + 1])
    if lowest > 1:
        gaps[: lowest - 1] = -np.inf
    count = int(np.argmax(gaps)) + 1
    return count, float(gaps[count - 1] / max(float(eigenvalues[-1]), 1e-9))


def _search(affinity: np.ndarray, lowest: int, highest: int) -> tuple[Spectral, np.ndarray]:
    """NME-SC's search over ``p``: the least ``p / g_p`` wins."""
    from scipy.sparse.csgraph import connected_components

    n = len(affinity)
    top = max(2, int(n * MAX_NEIGHBOUR_FRACTION), min(n - 1, MIN_NEIGHBOURS_TRIED))
    candidates = sorted({int(p) for p in np.linspace(2, top, min(NEIGHBOUR_STEPS, top - 1))})
    best: tuple[float, Spectral, np.ndarray] | None = None
    for p in candidates:
        graph = binarised(affinity, p)
        if connected_components(graph, directed=False)[0] > 1:
            continue  # a graph in pieces has its count in its pieces, not in its similarities
        values = np.linalg.eigvalsh(laplacian(graph))
        count, gap = eigengap_count(values, min(highest, n - 1), lowest)
        ratio = p / max(gap, 1e-9)
        if best is None or ratio < best[0]:
            best = (ratio, Spectral(count, p, gap), graph)
    if best is None:  # no p joins the windows: take the densest graph tried
        graph = binarised(affinity, top)
        count, gap = eigengap_count(np.linalg.eigvalsh(laplacian(graph)), min(highest, n - 1), lowest)
        return Spectral(count, top, gap), graph
    return best[1], best[2]


def count_and_labels(
    embeddings: np.ndarray, *, num_speakers: int | None = None, lowest: int = 1, highest: int = 8
) -> tuple[np.ndarray, Spectral]:
    """The speaker (0..k-1) of each L2-normalised embedding, and the search's outcome.

    Args:
        num_speakers: the count, if known (the graph is still tuned, the count not searched).
        lowest, highest: bounds on the count found.
    """
    from scipy.linalg import eigh
    from sklearn.cluster import KMeans

    n = len(embeddings)
    sample = np.linspace(0, n - 1, min(n, MAX_GRAPH_WINDOWS)).round().astype(int)
    points = embeddings[sample]
    affinity = points @ points.T
    found, graph = _search(affinity, lowest, highest)
    count = min(num_speakers or found.count, len(points))
    if count <= 1:
        return np.zeros(n, dtype=np.int64), Spectral(1, found.neighbours, found.gap)
    _, vectors = eigh(laplacian(graph), subset_by_index=[0, count - 1])
    labels = KMeans(count, n_init=10, random_state=0).fit_predict(vectors)
    centroids = np.stack([points[labels == k].mean(axis=0) for k in range(count)])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-9)
    return np.argmax(embeddings @ centroids.T, axis=1), Spectral(count, found.neighbours, found.gap)
