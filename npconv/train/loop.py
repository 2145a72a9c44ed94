"""The training loop: epochs of shuffled mini-batches, evaluation after each, and the ways a run ends.

One step is the textbook one::

    logits = model.forward(x_batch)                    # training mode
    loss, grad = softmax_cross_entropy(logits, y_batch)
    optimizer.zero_grad(); model.backward(grad); optimizer.step()

A run ends in one of three ways, each kept in :attr:`TrainingRun.status`:

``"completed"``
    every epoch ran;
``"interrupted"``
    Ctrl-C (``KeyboardInterrupt``): the loop stops where it is, the weights
    are left as the last finished step made them (an update cut half-way is
    undone), and what was trained so far is evaluated and reported;
``"diverged"``
    the loss (or the test loss after an epoch) stopped being a finite
    number -- a learning rate too large, typically.  The loop stops and puts
    back the last weights that gave a finite loss.

The first step of a run is *counted*: its convolution and linear calls run
with ``count=True`` and the kernels' tallies are kept in
:attr:`TrainingRun.step_counts` (forward and backward apart), to be set beside
the formulas.  Counts are linear in the batch size, so per image they are the
tallies divided by the batch size, exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from npconv.train.data import Dataset, batches
from npconv.train.layers import OpCounter
from npconv.train.losses import softmax_cross_entropy
from npconv.train.model import Model
from npconv.train.optimizers import SCHEDULES, Optimizer


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: the mean training loss and accuracy over its batches (as they were trained, in
    training mode), the test loss and accuracy after it (evaluation mode), and its training time."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StepCounts:
    """What the kernels counted in one training step of ``batch`` images, by phase and by layer."""

    batch: int
    convention: str
    forward_mults: int
    forward_adds: int
    backward_mults: int
    backward_adds: int
    #: layer name -> {"forward": mults, "backward": mults}
    by_layer: dict[str, dict[str, int]]

    def per_image(self, value: int) -> int:
        per, remainder = divmod(value, self.batch)
        if remainder:  # counts are linear in N: a remainder would mean a kernel miscounted
            raise ArithmeticError(f"{value:,} counted operations do not divide by the batch of {self.batch}")
        return per

    @property
    def step_mults(self) -> int:
        return self.forward_mults + self.backward_mults

    def to_dict(self) -> dict[str, object]:
        return {"batch": self.batch, "convention": self.convention,
                "forward_mults": self.forward_mults, "forward_adds": self.forward_adds,
                "backward_mults": self.backward_mults, "backward_adds": self.backward_adds,
                "per_image": {"forward_mults": self.per_image(self.forward_mults),
                              "backward_mults": self.per_image(self.backward_mults),
                              "step_mults": self.per_image(self.step_mults)},
                "by_layer": self.by_layer}


@dataclass
class TrainingRun:
    """Everything a run produced: per-epoch records, how it ended, the counted step."""

    network: str
    records: list[EpochRecord] = field(default_factory=list)
    status: str = "completed"
    #: optimizer steps taken (and kept)
    steps: int = 0
    #: what happened, in words, when the run did not complete
    message: str = ""
    step_counts: StepCounts | None = None
    #: test loss and accuracy of the weights kept, when the run stopped inside an epoch
    final_test: tuple[float, float] | None = None

    @property
    def final_accuracy(self) -> float | None:
        if self.final_test is not None:
            return self.final_test[1]
        return self.records[-1].test_accuracy if self.records else None

    @property
    def epoch_seconds(self) -> list[float]:
        return [r.seconds for r in self.records]


def evaluate(model: Model, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in evaluation mode."""
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model.forward(x[start:start + batch_size], training=False)
        labels = y[start:start + batch_size]
        loss, _ = softmax_cross_entropy(logits, labels)
        total_loss += loss * len(labels)
        correct += int((logits.argmax(axis=1) == labels).sum())
    return total_loss / len(y), correct / len(y)


class _Progress:
    """What :func:`train` needs from a progress bar (tqdm's ``update``, ``set_postfix_str``, ``close``)."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, text: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def _finite(value: float) -> bool:
    return math.isfinite(value)


def train(model: Model, data: Dataset, optimizer: Optimizer, *, epochs: int, batch_size: int, seed: int = 0,
          schedule: str = "constant", progress: Callable[[int, str], _Progress] | None = None,
          on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainingRun:
    """Train ``model`` on ``data`` for ``epochs`` epochs of shuffled batches (order from ``seed``).

    ``schedule`` names the learning-rate schedule (:data:`npconv.train.optimizers.SCHEDULES`),
    applied to the optimizer's learning rate at the start of each epoch.
    ``progress(total_steps, description)`` makes a progress bar (e.g.
    ``tqdm``); ``on_epoch`` is called with each epoch's record.
    """
    rate = SCHEDULES[schedule]
    base_lr = optimizer.lr

    def set_lr(epoch: int) -> None:
        optimizer.lr = rate(base_lr, epoch - 1, epochs)

    run = TrainingRun(model.name)
    rng = np.random.default_rng(seed)
    steps_per_epoch = math.ceil(len(data.y_train) / batch_size)
    bar = progress(epochs * steps_per_epoch, model.name) if progress else _Progress()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging loss is detected below, not warned about
        return _train(model, data, optimizer, run, rng, bar, epochs, batch_size, set_lr, on_epoch)


def _train(model: Model, data: Dataset, optimizer: Optimizer, run: TrainingRun, rng: np.random.Generator,
           bar: _Progress, epochs: int, batch_size: int, set_lr: Callable[[int], None],
           on_epoch: Callable[[EpochRecord], None] | None) -> TrainingRun:
    last_good = model.state()
    last_good_steps = 0
    updating = False
    try:
        for epoch in range(1, epochs + 1):
            set_lr(epoch)
            started = time.perf_counter()
            seen, loss_sum, correct = 0, 0.0, 0
            for indices in batches(len(data.y_train), batch_size, rng):
                x, y = data.x_train[indices], data.y_train[indices]
                counter = OpCounter() if run.step_counts is None else None
                if counter is not None:
                    model.attach_counter(counter)
                logits = model.forward(x, training=True)
                loss, grad = softmax_cross_entropy(logits, y)
                if not _finite(loss):
                    model.attach_counter(None)
                    return _diverged(run, model, last_good, last_good_steps, data,
                                     f"the training loss became {loss} at epoch {epoch}, step {run.steps + 1}")
                last_good, last_good_steps = model.state(), run.steps
                optimizer.zero_grad()
                model.backward(grad)
                if counter is not None:
                    model.attach_counter(None)
                    run.step_counts = _step_counts(counter, len(y))
                updating = True
                optimizer.step()
                updating = False
                run.steps += 1
                seen += len(y)
                loss_sum += loss * len(y)
                correct += int((logits.argmax(axis=1) == y).sum())
                bar.set_postfix_str(f"epoch {epoch}/{epochs} loss {loss:.3f}", refresh=False)  # drawn by update
                bar.update(1)
            seconds = time.perf_counter() - started
            test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test)
            if not _finite(test_loss):
                return _diverged(run, model, last_good, last_good_steps, data,
                                 f"the test loss became {test_loss} after epoch {epoch}")
            record = EpochRecord(epoch, loss_sum / seen, correct / seen, test_loss, test_accuracy, seconds)
            run.records.append(record)
            if on_epoch is not None:
                on_epoch(record)
    except KeyboardInterrupt:
        model.attach_counter(None)
        if updating:  # an update cut half-way: put back the weights it started from
            model.load_state(last_good)
            run.steps = last_good_steps
        run.status = "interrupted"
        run.message = (f"interrupted (Ctrl-C) after {run.steps:,} steps, {len(run.records)} of {epochs} "
                       "epochs complete")
        run.final_test = evaluate(model, data.x_test, data.y_test)
    finally:
        bar.close()
    return run


def _step_counts(counter: OpCounter, batch: int) -> StepCounts:
    conventions = {r.convention for r in counter.records}
    return StepCounts(batch, "/".join(sorted(conventions)),
                      counter.mults("forward"), counter.adds("forward"),
                      counter.mults("backward"), counter.adds("backward"), counter.by_layer())


def _diverged(run: TrainingRun, model: Model, last_good: dict[str, np.ndarray], last_good_steps: int,
              data: Dataset, what: str) -> TrainingRun:
    model.load_state(last_good)
    run.steps = last_good_steps
    run.status = "diverged"
    run.message = (f"{what}: stopped, and kept the last weights that gave a finite loss "
                   f"(after {last_good_steps:,} steps)")
    run.final_test = evaluate(model, data.x_test, data.y_test)
    return run
