"""Shift scenarios: which target data arrives, transformed how, in what order and batch size.

A :class:`Scenario` names a target split of a dataset, optionally corrupted (a domain is a
corruption name x severity) and/or label-shifted (target class prior drawn from a Dirichlet),
and how it is streamed: batch size and order (``iid``; ``class_sorted``; ``dirichlet``, the
LAME paper's non-i.i.d. label mixture; ``given``, the split's own stored order, as the Tent
authors stream each file). Scenario specs in configs may hold lists, which expand to the cross
product (:func:`expand_scenarios`).

Long-tailed targets (``long_tail``: ``forward`` / ``uniform`` / ``backward``, with
``imbalance_ratio``) resample the target to an exponential class profile, as in long-tailed
test-time adaptation benchmarks: ``forward`` has the source's long-tailed order (class 0 the
head), ``backward`` the reverse. Continual adaptation across domains: ``corruption`` may name a
sequence ``"gaussian_noise+shot_noise+..."``; the stream visits the domains in that order (each
one the whole target split, batches never straddle two domains) and a model adapter is not
reset between them. Episodic adaptation is one scenario per domain (or a method's own per-batch
reset, e.g. Tent's ``episodic``).

Gradual shifts: ``severity`` may name a schedule ``"1+2+3+4+5+4+3+2+1"``; each corruption of the
sequence is visited at each severity of the schedule in turn (the gradual setting of
mariodoebler/test-time-adaptation). How the domains of a sequence arrive is ``domain_order``:
``sequence`` (the default: one after another, as above), ``mixed`` (all domains pooled, then
ordered by ``order``: consecutive examples likely come from different domains, and with
``order: class_sorted`` or ``dirichlet`` the pooled stream is also label-correlated), or
``dirichlet`` (each domain ordered by ``order`` on its own, then each batch's mix of domains
drawn from Dirichlet(``domain_alpha``): small values give long runs of one domain in a random
order of visits, large ones a mixed stream).

Calendar chunks (``chunk_by``: a metadata column methods may see, e.g. NYC flights' ``month``):
the stream is one chunk per value of that column, in sorted order, each chunk ordered within by
``order``; ``batch_size`` does not apply. A scenario that sets both is rejected; a dataset's
``stream`` default ``batch_size`` gives way to a scenario's ``chunk_by`` (:func:`expand_scenarios`).
Label columns are rejected when the scenario is built, columns the dataset does not make visible by
:func:`check_chunk_columns` (at expansion) and by :meth:`Scenario.batches` (on the label-free metadata).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from shiftbench.cache import ArrayCache, stable_hash
from shiftbench.dataset import LABEL_COLUMNS, SCENARIO_METADATA, Dataset, Split
from shiftbench.errors import ShiftbenchError
from shiftbench.chunks import chunk_by_period
from shiftbench.seeding import generator

ORDERS = ("iid", "class_sorted", "dirichlet", "given")
LONG_TAILS = ("forward", "uniform", "backward")
DOMAIN_ORDERS = ("sequence", "mixed", "dirichlet")
#: fields added after the first release: left out of ``as_dict`` at their defaults, so that
#: existing scenarios (and the cell keys hashed from them) are unchanged
_LATER_FIELDS = {"long_tail": None, "imbalance_ratio": 100.0, "chunk_by": None, "domain_order": "sequence",
                 "domain_alpha": 0.1}
#: a stream's batch size unless a scenario sets one; a ``chunk_by`` scenario keeps it (any other is rejected)
DEFAULT_BATCH_SIZE = 64


class Batches(list):
    """A stream: index batches in arrival order (a list of index arrays), and a label per batch
    (the ``chunk_by`` value, else the batch's position in its domain; in a domain sequence prefixed
    by the corruption)."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[str] = []

    def add(self, index: np.ndarray, label: str) -> None:
        self.append(index)
        self.labels.append(label)


def batch_labels(batches: list[np.ndarray]) -> list[str]:
    """The label of each batch of a stream: a :class:`Batches`' own, else the batch positions."""
    return list(batches.labels) if isinstance(batches, Batches) else [str(i) for i in range(len(batches))]


@dataclass(frozen=True)
class Scenario:
    """One target distribution and the way it is streamed to a method."""

    target: str = "test"
    corruption: str | None = None
    severity: int | str | None = None
    label_shift: float | None = None
    order: str = "iid"
    order_alpha: float = 0.1
    batch_size: int = DEFAULT_BATCH_SIZE
    long_tail: str | None = None
    imbalance_ratio: float = 100.0
    chunk_by: str | None = None
    domain_order: str = "sequence"
    domain_alpha: float = 0.1

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ShiftbenchError(f"unknown stream order {self.order!r}; valid orders: {', '.join(ORDERS)}")
        if self.long_tail is not None and self.long_tail not in LONG_TAILS:
            raise ShiftbenchError(f"unknown long_tail {self.long_tail!r}; valid values: {', '.join(LONG_TAILS)}")
        if self.imbalance_ratio < 1:
            raise ShiftbenchError(f"imbalance_ratio must be >= 1 (largest / smallest class); got {self.imbalance_ratio}")
        if self.long_tail is not None and self.label_shift is not None:
            raise ShiftbenchError("choose one label shift: a Dirichlet prior (label_shift) or a long-tailed profile (long_tail)")
        if (self.corruption is None) != (self.severity is None):
            raise ShiftbenchError("a corrupted scenario needs both corruption and severity (1..5)")
        if self.batch_size < 1:
            raise ShiftbenchError(f"batch_size must be >= 1; got {self.batch_size}")
        if self.chunk_by is not None:
            self._check_chunking()
        if self.severity is not None:
            self._check_severities()
        self._check_domain_order()

    def _check_severities(self) -> None:
        tokens = str(self.severity).split("+")
        if not all(t.strip().isdigit() and 1 <= int(t) <= 5 for t in tokens):
            raise ShiftbenchError(f"severity {self.severity!r} is not a level 1..5 or a schedule of them joined by '+' "
                                  "(e.g. severity: 3, or severity: '1+2+3+4+5+4+3+2+1' for a gradual shift)")

    def _check_domain_order(self) -> None:
        if self.domain_order not in DOMAIN_ORDERS:
            raise ShiftbenchError(f"unknown domain_order {self.domain_order!r}; valid values: {', '.join(DOMAIN_ORDERS)}")
        if self.domain_alpha <= 0:
            raise ShiftbenchError(f"domain_alpha must be > 0 (the Dirichlet concentration); got {self.domain_alpha}")
        if self.domain_order != "sequence" and len(self.domains) < 2:
            raise ShiftbenchError(f"domain_order={self.domain_order!r} orders several domains, but scenario "
                                  f"{self.name} has one; name a corruption sequence ('gaussian_noise+fog') or a "
                                  "severity schedule ('1+3+5')")
        if self.domain_order == "dirichlet" and self.chunk_by is not None:
            raise ShiftbenchError(f"domain_order=dirichlet draws each batch's domains, which does not apply with "
                                  f"chunk_by={self.chunk_by!r}; use domain_order=sequence or mixed")

    def _check_chunking(self) -> None:
        if self.chunk_by in LABEL_COLUMNS:
            raise ShiftbenchError(f"chunk_by={self.chunk_by!r} is a label column; chunks must follow a label-free "
                                  "metadata column (e.g. chunk_by=month)")
        if self.batch_size != DEFAULT_BATCH_SIZE:
            raise ShiftbenchError(f"batch_size={self.batch_size} does not apply with chunk_by={self.chunk_by!r} "
                                  "(one chunk per value of the column); remove one of them")
        if self.order == "dirichlet":
            raise ShiftbenchError(f"order=dirichlet mixes classes per batch of batch_size, which does not apply with "
                                  f"chunk_by={self.chunk_by!r}; use order=iid or class_sorted within the chunks")

    @property
    def domain(self) -> str:
        """Where the data comes from: the split, or split/corruption/severity."""
        if self.corruption:
            return f"{self.target}-c/{self.corruption}/{self.severity}"
        return self.target

    @property
    def name(self) -> str:
        parts = [self.domain]
        if self.label_shift is not None:
            parts.append(f"labelshift{self.label_shift:g}")
        if self.long_tail is not None:
            parts.append(f"lt-{self.long_tail}{self.imbalance_ratio:g}")
        if self.order != "iid":
            parts.append(self.order if self.order != "dirichlet" else f"dirichlet{self.order_alpha:g}")
        if self.domain_order != "sequence":
            parts.append("domains-" + (self.domain_order if self.domain_order == "mixed"
                                       else f"dirichlet{self.domain_alpha:g}"))
        parts.append(f"by-{self.chunk_by}" if self.chunk_by is not None else f"bs{self.batch_size}")
        return ":".join(parts)

    @property
    def corruptions(self) -> list[str]:
        """The corruptions of the stream, in order (empty for clean data)."""
        return self.corruption.split("+") if self.corruption else []

    @property
    def severities(self) -> list[int]:
        """The severity schedule each corruption is visited at, in order (empty for clean data)."""
        return [int(t) for t in str(self.severity).split("+")] if self.severity is not None else []

    @property
    def domains(self) -> list[tuple[str, int]]:
        """The (corruption, severity) domains the stream visits, in order: each corruption at each severity
        of the schedule in turn (empty for clean data)."""
        return [(c, s) for c in self.corruptions for s in self.severities]

    def _domain_label(self, corruption: str, severity: int) -> str:
        return corruption if len(self.severities) == 1 else f"{corruption}/{severity}"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key, default in _LATER_FIELDS.items():
            if d[key] == default:
                del d[key]
        return d

    def target_split(self, dataset: Dataset, cache: ArrayCache, seed: int) -> Split:
        """The labelled target split of this scenario (corrupted and label-shift resampled); cached.

        A domain sequence is the concatenation of the corrupted splits, each resampled alike."""
        from shiftbench.corruptions.splits import corrupted_split  # torch, OpenCV and numba: only when corrupting

        base = dataset.split(self.target)
        domains = [corrupted_split(base, c, s, cache) for c, s in self.domains] or [base]
        if self.label_shift is not None:
            idx = label_shift_indices(base.y, dataset.n_classes, self.label_shift, seed)
            domains = [d.subset(idx, tag=f"labelshift{self.label_shift}-{seed}") for d in domains]
        if self.long_tail is not None:
            idx = long_tail_indices(base.y, dataset.n_classes, self.long_tail, self.imbalance_ratio, seed)
            domains = [d.subset(idx, tag=f"lt-{self.long_tail}{self.imbalance_ratio}-{seed}") for d in domains]
        return domains[0] if len(domains) == 1 else concatenate_splits(domains)

    def batches(self, y: np.ndarray, seed: int, visible: pd.DataFrame | None = None) -> Batches:
        """Index batches in arrival order; ``y`` is used only to build non-i.i.d. orders.

        With several domains, ``y`` holds equal consecutive blocks, one per domain (:attr:`domains`),
        which arrive as ``domain_order`` says. With ``chunk_by``, ``visible`` is the label-free
        metadata of the split (``Dataset.label_free(split).metadata``), whose ``chunk_by`` column
        cuts each block into one chunk per value, in sorted order."""
        rng = generator(seed, "stream")
        n_domains = max(1, len(self.domains))
        if len(y) % n_domains:
            raise ShiftbenchError(f"a stream over {n_domains} domains needs equal blocks; got {len(y)} labels")
        block = len(y) // n_domains
        values = self._chunk_values(visible, len(y))
        if self.domain_order == "mixed":
            return self._stream([("", np.arange(len(y)))], y, values, rng)
        if self.domain_order == "dirichlet":
            return self._domain_dirichlet_stream(y, block, rng)
        labels = [self._domain_label(c, s) + "/" for c, s in self.domains] if n_domains > 1 else [""]
        return self._stream([(labels[d], np.arange(start, start + block))
                             for d, start in enumerate(range(0, len(y), max(block, 1)))], y, values, rng)

    def _stream(self, blocks: list[tuple[str, np.ndarray]], y: np.ndarray, values: np.ndarray | None,
                rng: np.random.Generator) -> Batches:
        """Batches of ``blocks`` (label prefix, rows) visited in turn, each cut into chunks and ordered."""
        out = Batches()
        for prefix, rows in blocks:
            for label, part in self._chunks(rows, values):
                order = part[self._order(y[part], rng)]
                if self.chunk_by is not None:
                    out.add(order, prefix + label)
                    continue
                for i in range(0, len(order), self.batch_size):
                    out.add(order[i:i + self.batch_size], f"{prefix}{i // self.batch_size}")
        return out

    def _domain_dirichlet_stream(self, y: np.ndarray, block: int, rng: np.random.Generator) -> Batches:
        """Each domain's block ordered by ``order`` on its own, then interleaved: every batch's mix of the
        domains that still hold examples is drawn from Dirichlet(``domain_alpha``)."""
        queues = {d: list(start + self._order(y[start:start + block], rng))
                  for d, start in enumerate(range(0, len(y), block))}
        order = np.asarray(dirichlet_interleave(queues, self.domain_alpha, self.batch_size, rng), dtype=np.int64)
        out = Batches()
        for i in range(0, len(order), self.batch_size):
            out.add(order[i:i + self.batch_size], str(i // self.batch_size))
        return out

    def _chunk_values(self, visible: pd.DataFrame | None, n: int) -> np.ndarray | None:
        """The ``chunk_by`` column of the label-free metadata (``None`` without ``chunk_by``)."""
        if self.chunk_by is None:
            return None
        if visible is None or self.chunk_by not in visible.columns:
            shown = ", ".join(visible.columns) if visible is not None and len(visible.columns) else "(none)"
            raise ShiftbenchError(f"chunk_by={self.chunk_by!r} is not a metadata column methods may see on this "
                                  f"split; visible columns: {shown}")
        if len(visible) != n:
            raise ShiftbenchError(f"the visible metadata has {len(visible)} rows but the split has {n} labels")
        return visible[self.chunk_by].to_numpy()

    @staticmethod
    def _chunks(rows: np.ndarray, values: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
        """(label, row indices) per chunk of ``rows``: one per sorted value of ``values``, or all of them."""
        if values is None:
            return [("", rows)]
        chunks = chunk_by_period(values[rows])
        return [(key, rows[members]) for key, members in zip(chunks.keys, chunks.members())]

    def _order(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.order == "given":
            return np.arange(len(y))
        if self.order == "iid":
            return rng.permutation(len(y))
        if self.order == "class_sorted":
            return np.lexsort((rng.random(len(y)), y))
        return dirichlet_order(y, self.order_alpha, self.batch_size, rng)


def label_shift_indices(y: np.ndarray, n_classes: int, alpha: float, seed: int) -> np.ndarray:
    """Resample ``len(y)`` indices (with replacement) so the class prior is a Dirichlet(alpha) draw."""
    rng = generator(seed, "label_shift")
    present = np.unique(y)
    prior = np.zeros(n_classes)
    prior[present] = rng.dirichlet(np.full(len(present), alpha))
    counts = rng.multinomial(len(y), prior)
    idx = [rng.choice(np.flatnonzero(y == c), size=k, replace=True) for c, k in enumerate(counts) if k]
    return rng.permutation(np.concatenate(idx))


def long_tail_profile(n_classes: int, kind: str, imbalance_ratio: float) -> np.ndarray:
    """Class prior ``pi_c ~ ratio^(-c/(K-1))`` (``forward``), its reverse (``backward``) or uniform."""
    exponent = np.arange(n_classes) / max(n_classes - 1, 1)
    profiles = {"forward": exponent, "backward": exponent[::-1], "uniform": np.zeros(n_classes)}
    weights = float(imbalance_ratio) ** -profiles[kind]
    return weights / weights.sum()


def long_tail_indices(y: np.ndarray, n_classes: int, kind: str, imbalance_ratio: float, seed: int) -> np.ndarray:
    """Resample ``len(y)`` indices (with replacement) so the class counts follow a long-tailed profile."""
    rng = generator(seed, "long_tail")
    present = np.zeros(n_classes, dtype=bool)
    present[np.unique(y)] = True
    prior = long_tail_profile(n_classes, kind, imbalance_ratio) * present
    counts = rng.multinomial(len(y), prior / prior.sum())
    idx = [rng.choice(np.flatnonzero(y == c), size=k, replace=True) for c, k in enumerate(counts) if k]
    return rng.permutation(np.concatenate(idx))


def concatenate_splits(splits: list[Split]) -> Split:
    """One split holding ``splits`` one after another (in-memory inputs)."""
    return Split(splits[0].name, np.concatenate([s.y for s in splits]),
                 pd.concat([s.metadata for s in splits], ignore_index=True),
                 x=np.concatenate([np.asarray(s.inputs()) for s in splits]),
                 fingerprint=stable_hash([s.fingerprint for s in splits]))


def dirichlet_order(y: np.ndarray, alpha: float, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Non-i.i.d. order of the LAME paper: each batch's class mix is drawn from Dirichlet(alpha),
    until every example has been used once (small alpha -> few classes per batch)."""
    pools = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)}
    return np.asarray(dirichlet_interleave(pools, alpha, batch_size, rng), dtype=np.int64)


def dirichlet_interleave(pools: dict[Any, list[int]], alpha: float, batch_size: int,
                         rng: np.random.Generator) -> list[int]:
    """Merge the queues ``pools`` (group -> items, taken from the front): each draw of ``batch_size`` items
    splits them among the groups still holding items by a Dirichlet(alpha) mix, until all are used.
    ``pools`` is consumed."""
    order: list[int] = []
    while pools:
        groups = list(pools)
        mix = rng.dirichlet(np.full(len(groups), alpha))
        counts = rng.multinomial(batch_size, mix)
        for g, k in zip(groups, counts):
            take, pools[g] = pools[g][:k], pools[g][k:]
            order.extend(take)
            if not pools[g]:
                del pools[g]
    return order


def expand_scenarios(specs: Iterable[dict[str, Any]], defaults: dict[str, Any] | None = None) -> list[Scenario]:
    """Expand scenario specs whose values may be lists into the cross product of scenarios.

    ``defaults`` (a dataset's ``stream``) fill the keys a spec leaves out; their ``batch_size`` does not
    apply to a scenario with ``chunk_by`` and is dropped there, while a spec that sets both is refused."""
    out: list[Scenario] = []
    for own in specs:
        spec = {**(defaults or {}), **dict(own)}
        unknown = set(spec) - set(Scenario.__dataclass_fields__)
        if unknown:
            raise ShiftbenchError(f"unknown scenario keys {sorted(unknown)}; valid keys: {sorted(Scenario.__dataclass_fields__)}")
        keys = list(spec)
        values = [v if isinstance(v, (list, tuple)) else [v] for v in spec.values()]
        for combo in itertools.product(*values):
            fields = dict(zip(keys, combo))
            if fields.get("chunk_by") is not None:
                if "batch_size" in own:
                    raise ShiftbenchError(f"scenario {dict(own)} sets batch_size with chunk_by={fields['chunk_by']!r}, "
                                          "which streams one chunk per value of the column; remove one of them")
                fields.pop("batch_size", None)
            s = Scenario(**fields)
            if s not in out:
                out.append(s)
    return out


def check_chunk_columns(scenarios: Iterable[Scenario], dataset_cls: type[Dataset]) -> None:
    """Fail before anything is computed when a scenario chunks by a column that ``dataset_cls`` does not
    let methods see (its ``visible_metadata`` and the scenario columns), naming the visible ones."""
    visible = [c for c in (*dataset_cls.visible_metadata, *SCENARIO_METADATA) if c not in LABEL_COLUMNS]
    for s in scenarios:
        if s.chunk_by is not None and s.chunk_by not in visible:
            raise ShiftbenchError(f"scenario {s.name}: chunk_by={s.chunk_by!r} is not a metadata column dataset "
                                  f"{dataset_cls.name!r} lets methods see; visible columns: {', '.join(visible)}")
