"""k-NN interpolated classification over a datastore of utterance embeddings.

The datastore holds L2-normalized embeddings ``(N, D)`` with their class
labels ``(N,)``. For a query ``q`` (normalized too) the ``k`` nearest entries
by cosine similarity ``s_1..s_k`` give a class distribution

    p_knn(c | q) = sum_{j: y_j = c} softmax(s / T)_j

and the decoder's posterior is ``p = beta * p_model + (1 - beta) * p_knn``.
``beta``, ``k`` and ``T`` are chosen on a validation set only
(:func:`tune_knn`), never on the test set.

Search is exact: a matrix product in torch (any device), or faiss
(``IndexFlatIP``, the ``knn`` extra) for datastores too large for one
product; both return the same neighbours.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


class KNNDatastore:
    """Normalized embeddings with labels; exact cosine search by ``backend`` ``torch`` or ``faiss``."""

    def __init__(self, embeddings: torch.Tensor | np.ndarray, labels: Sequence[int], num_classes: int,
                 backend: str = "torch", chunk: int = 4096) -> None:
        emb = torch.as_tensor(np.asarray(embeddings) if isinstance(embeddings, np.ndarray) else embeddings)
        if emb.dim() != 2 or emb.shape[0] != len(labels):
            raise ValueError(f"embeddings {tuple(emb.shape)} do not match {len(labels)} labels")
        if backend not in ("torch", "faiss"):
            raise ValueError(f"unknown k-NN backend '{backend}' (torch, faiss)")
        self.emb = F.normalize(emb.float(), dim=-1)
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        if int(self.labels.max()) >= num_classes or int(self.labels.min()) < 0:
            raise ValueError("a datastore label is outside [0, num_classes)")
        self.num_classes = num_classes
        self.backend = backend
        self.chunk = chunk
        self._index = None
        if backend == "faiss":
            try:
                import faiss  # type: ignore[import-not-found]
            except ImportError as err:
                raise ImportError("the faiss k-NN backend needs faiss-cpu (pip install 'speechser[knn]')") from err
            self._index = faiss.IndexFlatIP(self.emb.shape[1])
            self._index.add(np.ascontiguousarray(self.emb.cpu().numpy(), dtype=np.float32))

    def __len__(self) -> int:
        return int(self.emb.shape[0])

    def search(self, queries: torch.Tensor, k: int, exclude: Optional[Sequence[int]] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``queries (M, D)`` -> cosine similarities ``(M, k)`` and datastore indices ``(M, k)``, best first.

        ``exclude[i]`` (a datastore index, or -1) is left out of query ``i``'s
        neighbours: leave-one-out search when the queries are in the datastore.
        """
        q = F.normalize(torch.as_tensor(queries).float(), dim=-1)
        extra = 1 if exclude is not None else 0
        kk = min(k + extra, len(self))
        if self._index is not None:
            sims_np, idx_np = self._index.search(np.ascontiguousarray(q.cpu().numpy(), dtype=np.float32), kk)
            sims, idx = torch.from_numpy(sims_np), torch.from_numpy(idx_np).long()
        else:
            emb = self.emb.to(q.device)
            parts = [torch.topk(q[i : i + self.chunk] @ emb.t(), kk, dim=1) for i in range(0, len(q), self.chunk)]
            sims = torch.cat([p.values for p in parts]).cpu()
            idx = torch.cat([p.indices for p in parts]).cpu()
        if exclude is None:
            return sims[:, :k], idx[:, :k]
        ex = torch.as_tensor(list(exclude), dtype=torch.long)[:, None]
        keep = idx != ex
        # Keep the first k entries that are not the excluded one (at most one is dropped per row).
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, : min(k, kk)]
        return torch.gather(sims, 1, order), torch.gather(idx, 1, order)

    def distribution(self, queries: torch.Tensor, k: int, temperature: float,
                     exclude: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Class distribution ``(M, C)`` from the ``k`` nearest neighbours (see the module docstring)."""
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        sims, idx = self.search(queries, k, exclude)
        return knn_distribution(sims, self.labels[idx], self.num_classes, temperature)


def knn_distribution(sims: torch.Tensor, neighbour_labels: torch.Tensor, num_classes: int,
                     temperature: float) -> torch.Tensor:
    """``sims (M, k)``, ``neighbour_labels (M, k)`` -> ``(M, C)``: softmax(sims / T) summed per class."""
    w = torch.softmax(sims.float() / temperature, dim=1)
    out = torch.zeros(sims.shape[0], num_classes, dtype=torch.float)
    return out.scatter_add_(1, neighbour_labels.long(), w)


def interpolate(p_model: torch.Tensor, p_knn: torch.Tensor, beta: float) -> torch.Tensor:
    """``beta * p_model + (1 - beta) * p_knn`` (both ``(M, C)``)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError("beta must be in [0, 1]")
    return beta * p_model.float() + (1.0 - beta) * p_knn.float()


@dataclass
class KNNParams:
    beta: float
    k: int
    temperature: float
    score: float


def tune_knn(
    store: KNNDatastore,
    valid_emb: torch.Tensor,
    valid_post: torch.Tensor,
    valid_labels: Sequence[int],
    score_fn: Callable[[Sequence[int], Sequence[int]], float],
    betas: Sequence[float] = tuple(x / 10 for x in range(11)),
    ks: Sequence[int] = (4, 8, 16, 32),
    temperatures: Sequence[float] = (0.05, 0.1, 0.2, 0.5, 1.0),
    exclude: Optional[Sequence[int]] = None,
) -> Tuple[KNNParams, List[KNNParams]]:
    """Grid search of ``(beta, k, T)`` on the validation set by ``score_fn(refs, hyps)`` (higher is better).

    Ties go to the larger ``beta`` (closer to the model alone), then the
    smaller ``k`` and ``T``: the search never prefers the datastore without
    evidence. ``exclude`` gives each validation utterance's own index in the
    datastore when the datastore contains the validation set.
    """
    refs = list(valid_labels)
    rows: List[KNNParams] = []
    for k, t in itertools.product(sorted(set(ks)), sorted(set(temperatures))):
        p_knn = store.distribution(valid_emb, k, t, exclude)
        for b in sorted(set(betas)):
            hyps = interpolate(valid_post, p_knn, b).argmax(1).tolist()
            rows.append(KNNParams(float(b), int(k), float(t), float(score_fn(refs, hyps))))
    best = max(rows, key=lambda r: (r.score, r.beta, -r.k, -r.temperature))
    return best, rows

