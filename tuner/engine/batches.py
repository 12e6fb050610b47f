"""Where a trial's minibatches come from: in-memory tensors, or a data set read through a ``DataLoader``.

A workload's split is a ``Split`` (tensors, moved whole to the device once) or an ``ItemDataset`` (read per item,
on the host; ``tuner.workloads.ItemDataset``). The loop and the population ask this module for batches and see
``Split`` s on the device either way:

- **tensors**: each epoch a permutation from the trial's generator, and ``Split.take`` of its slices (the path
  the loop always had, kept op for op: same results, same speed); evaluation in chunks of ``EVAL_CHUNK`` rows.
- **data sets**: a ``DataLoader`` configured by ``training.loader`` (workers, pinned memory on CUDA, prefetch,
  persistent workers). Its sampler draws each epoch's permutation from a generator seeded with the trial's data
  seed, and gives every sample a seed of its own (``sample_seed``: data seed, epoch, index), which the data set's
  ``sample(index, seed)`` draws its augmentation from (or, without one, torch's global generator is seeded with it
  around ``dataset[index]``, in a fork of the generator when in this process). So a trial gives the same batches,
  augmented the same way, whatever ``num_workers`` is, and reading data never moves the trial's own random
  streams. Evaluation reads in order, un-augmented, in batches of about ``EVAL_BYTES``. Batches are copied to the
  device as they arrive (``non_blocking`` from pinned memory).

A ``SplitBatches`` holds its loader (and so its persistent workers) for as long as the prepared study keeps it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from tuner.spec import LoaderSpec
from tuner.workloads import Split, SplitData

#: Rows one evaluation chunk of an in-memory split holds (the loop's chunk).
EVAL_CHUNK = 4096
#: Bytes of inputs one evaluation batch of a data set holds (its batch size is at least the training batch size).
EVAL_BYTES = 16 * 2**20

_MASK = 2**64 - 1


def sample_seed(data_seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch: a hash (splitmix64) of the three, in [0, 2**63)."""
    z = (data_seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) >> 1


def chunks(split: Split, chunk: int = EVAL_CHUNK) -> Iterator[Split]:
    """An in-memory split in order, ``chunk`` rows at a time (on the split's device)."""
    n = len(split)
    for start in range(0, n, chunk):
        yield split.take(torch.arange(start, min(start + chunk, n), device=split.x.device))


class _Keyed(Dataset[Any]):
    """The data set a loader reads: a key is ``(index, seed)``; ``seed`` None reads the item as stored."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.seeded = getattr(dataset, "sample", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int | None]) -> Any:
        index, seed = key
        if seed is None:
            return self.dataset[index]
        if self.seeded is not None:
            return self.seeded(index, seed)
        # The CPU generator only (items are read on the host); torch.manual_seed would also queue a seeding of
        # every GPU, which costs milliseconds a call.
        if get_worker_info() is not None:  # a worker process: its generator is its own
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]


class _EpochOrder(Sampler[tuple[int, int | None]]):
    """Each pass: a permutation of the items from ``generator``, each with its ``sample_seed`` (or in order,
    un-seeded, for evaluation)."""

    def __init__(self, n: int, shuffle: bool):
        self.n, self.shuffle = n, shuffle
        self.generator = torch.Generator()
        self.data_seed, self.epoch = 0, 0

    def restart(self, data_seed: int) -> None:
        self.generator.manual_seed(data_seed)
        self.data_seed, self.epoch = data_seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int | None]]:
        if not self.shuffle:
            return iter([(i, None) for i in range(self.n)])
        order = torch.randperm(self.n, generator=self.generator).tolist()
        epoch, self.epoch = self.epoch, self.epoch + 1
        return iter([(i, sample_seed(self.data_seed, epoch, i)) for i in order])


def collate(items: Sequence[tuple[Any, Any, dict[str, Any]]]) -> tuple[torch.Tensor, torch.Tensor,
                                                                         dict[str, torch.Tensor]]:
    """Items ``(input, class, {task: target})`` as one batch ``(inputs, classes, {task: targets})``."""
    xs, ys, auxes = zip(*items, strict=True)
    x = torch.stack([torch.as_tensor(v) for v in xs])
    y = torch.stack([torch.as_tensor(v) for v in ys]).long()
    aux = {k: torch.stack([torch.as_tensor(a[k]) for a in auxes]) for k in auxes[0]}
    return x, y, aux


def _seed_worker(worker_id: int) -> None:
    """numpy's and ``random``'s global generators of a loader worker, from the seed torch gave the worker."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class SplitBatches:
    """One split's batches on ``device``, from tensors or a data set (see the module docstring).

    Args:
        split: the split as the workload gave it (a ``Split`` already on ``device``, or a data set).
        device: where batches go.
        batch_size: rows of a training batch (evaluation: ``EVAL_CHUNK`` rows of tensors, ``EVAL_BYTES`` of data).
        loader: the DataLoader settings for a data set.
        shuffle: a training split (epochs in a seeded random order, augmented) or an evaluation one (in order).
        input_shape: one input's shape (sizes the evaluation batches of a data set).
    """

    def __init__(self, split: SplitData, device: torch.device, batch_size: int, loader: LoaderSpec,
                 shuffle: bool, input_shape: tuple[int, ...]):
        self.split, self.device, self.shuffle = split, device, shuffle
        self.in_memory = isinstance(split, Split)
        self.batch_size = batch_size
        self.generator = torch.Generator()
        self._loader: DataLoader[Any] | None = None
        if not self.in_memory:
            if not shuffle:
                rows = EVAL_BYTES // max(1, 4 * math.prod(input_shape))
                self.batch_size = max(batch_size, min(EVAL_CHUNK, rows))
            self._order = _EpochOrder(len(split), shuffle)
            workers = loader.num_workers
            self._loader = DataLoader(
                _Keyed(split), batch_size=self.batch_size, sampler=self._order, collate_fn=collate,
                num_workers=workers, pin_memory=loader.pin_memory and device.type == "cuda",
                prefetch_factor=loader.prefetch_factor if workers else None,
                persistent_workers=loader.persistent_workers and workers > 0,
                worker_init_fn=_seed_worker if workers else None, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.split)

    def restart(self, data_seed: int) -> SplitBatches:
        """Start a trial's epochs: the order (and augmentation) from ``data_seed``; returns self."""
        self.generator.manual_seed(data_seed)
        if not self.in_memory:
            self._order.restart(data_seed)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Where the training order stands (the generators, the epoch count): a trial's checkpoint keeps it."""
        state: dict[str, Any] = {"generator": self.generator.get_state()}
        if not self.in_memory:
            order = self._order
            state.update(order=order.generator.get_state(), data_seed=order.data_seed, epoch=order.epoch)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the order from ``state_dict``'s answer (a resumed trial)."""
        self.generator.set_state(state["generator"].cpu())
        if not self.in_memory:
            self._order.generator.set_state(state["order"].cpu())
            self._order.data_seed, self._order.epoch = int(state["data_seed"]), int(state["epoch"])

    def epoch(self) -> Iterator[Split]:
        """The next epoch's batches (a training split: a fresh random order; an evaluation one: in order)."""
        if self._loader is None:
            split = self.split
            assert isinstance(split, Split)
            if not self.shuffle:
                yield from chunks(split)
                return
            order = torch.randperm(len(split), generator=self.generator).to(self.device)
            for i in range(0, len(split), self.batch_size):
                yield split.take(order[i:i + self.batch_size])
            return
        blocking = not self._loader.pin_memory
        for x, y, aux in self._loader:
            yield Split(x.to(self.device, non_blocking=not blocking), y.to(self.device, non_blocking=not blocking),
                        {k: v.to(self.device, non_blocking=not blocking) for k, v in aux.items()})

    def __iter__(self) -> Iterator[Split]:
        return self.epoch()

    def take(self, index: torch.Tensor) -> Split:
        """The items at ``index`` (1-D, on the host), un-augmented, as one batch on the device; reading them
        leaves torch's global generator as it was."""
        if isinstance(self.split, Split):
            return self.split.take(index.to(self.device))
        with torch.random.fork_rng(devices=[]):
            x, y, aux = collate([self.split[int(i)] for i in index])
        return Split(x.to(self.device), y.to(self.device), {k: v.to(self.device) for k, v in aux.items()})
