"""``npconv train``: the course's standard-vs-separable experiment, trained and counted, side by side.

:func:`run` is the command (``npconv.cli`` parses the flags and calls it).
Everything a typo can break is checked before the first step: the numbers,
the networks, the data file, the ``--save`` folder (a file is created there
and removed), ``--load``, ``--plot`` and the libraries needed.  Then each
network trains in turn (same seed, same batches), and the report sets them
side by side: parameters, mults per image from the formulas and as the
kernels counted them, time, loss and accuracy per epoch.

Exit status: 0 trained; 2 bad input -- or a loss that stopped being finite
(the run stops, keeps the last good weights, saves them with ``--save``,
prints what it trained and says so); 130 interrupted with Ctrl-C (after
reporting, and saving with ``--save``, what was trained so far).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from npconv.errors import EXIT_INTERRUPTED, ConvArgumentError, FileError, echo
from npconv.render import table

#: The course problem's pair.
DEFAULT_NETS = ("small_standard", "small_separable")

#: Defaults, chosen so that both networks pass their accuracy targets with room on the digits and
#: the whole run stays well under two minutes on a 2-core machine (see the README).
DEFAULTS = {"epochs": 40, "batch_size": 16, "lr": 0.01, "optimizer": "adam", "momentum": 0.9,
            "schedule": "cosine", "seed": 0, "method": "im2col"}

OPTIMIZER_NAMES = ("sgd", "adam")
SCHEDULE_NAMES = ("cosine", "constant")
#: BLAS threads while training (see :func:`_run`).
BLAS_THREADS = 1


# ---------------------------------------------------------------------- checking the flags


def _int(text: str | None, flag: str, default: int, minimum: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConvArgumentError(flag, f"an int >= {minimum}", repr(text)) from None
    if value < minimum:
        raise ConvArgumentError(flag, f"an int >= {minimum}", repr(text))
    return value


def _float(text: str | None, flag: str, default: float, expected: str, accept) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConvArgumentError(flag, expected, repr(text)) from None
    if not math.isfinite(value) or not accept(value):
        raise ConvArgumentError(flag, expected, repr(text))
    return value


@dataclass(frozen=True)
class Settings:
    """The checked flags."""

    nets: tuple[str, ...]
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    schedule: str
    method: str
    seed: int
    data: str | None
    save: str | None
    load: str | None
    plot: str | None
    json: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _nets(values: list[str] | None) -> tuple[str, ...]:
    if not values:
        return DEFAULT_NETS
    names = tuple(name.strip() for value in values for name in value.split(",") if name.strip())
    if not names:
        raise ConvArgumentError("--net", "one or more network names or TOML files", repr(",".join(values)))
    for name in names:
        if names.count(name) > 1:
            raise ConvArgumentError("--net", "each network once", f"{name!r} twice")
    return names


def _method(text: str | None) -> str:
    from npconv import kernels

    if text is None:
        return DEFAULTS["method"]
    if text not in kernels.available_methods():
        raise ConvArgumentError("--method", f"one of {', '.join(kernels.available_methods())}", repr(text))
    return text


def _readable(path: str | None, flag: str) -> str | None:
    if path is not None and not os.path.isfile(path):
        raise FileError(flag, "an existing .npz file", echo(path))
    return path


def _output(path: str | None, flag: str) -> str | None:
    """``path`` if it can be written (a regular or a new file in a folder you may write to), checked
    before any training; the file is written whole or not at all, once training ends."""
    from npconv import files

    return None if path is None else str(files.check_output(path, flag))


def check_settings(args: argparse.Namespace) -> Settings:
    """Every flag checked; errors name the flag, what was expected and what arrived."""
    optimizer = DEFAULTS["optimizer"] if args.optimizer is None else args.optimizer
    if optimizer not in OPTIMIZER_NAMES:
        raise ConvArgumentError("--optimizer", " or ".join(OPTIMIZER_NAMES), repr(optimizer))
    if args.momentum is not None and optimizer != "sgd":
        raise ConvArgumentError("--momentum", "--optimizer sgd (Adam has no momentum flag)",
                                f"--optimizer {optimizer}")
    schedule = DEFAULTS["schedule"] if args.schedule is None else args.schedule
    if schedule not in SCHEDULE_NAMES:
        raise ConvArgumentError("--schedule", " or ".join(SCHEDULE_NAMES), repr(schedule))
    return Settings(
        nets=_nets(args.net),
        epochs=_int(args.epochs, "--epochs", DEFAULTS["epochs"], 1),
        batch_size=_int(args.batch_size, "--batch-size", DEFAULTS["batch_size"], 1),
        lr=_float(args.lr, "--lr", DEFAULTS["lr"], "a positive learning rate such as 0.01", lambda v: v > 0),
        optimizer=optimizer,
        momentum=_float(args.momentum, "--momentum", DEFAULTS["momentum"], "a momentum 0 <= m < 1 such as 0.9",
                        lambda v: 0 <= v < 1),
        schedule=schedule,
        method=_method(args.method),
        seed=_int(args.seed, "--seed", DEFAULTS["seed"], 0),
        data=_readable(args.data, "--data"),
        save=_output(args.save, "--save"),
        load=_readable(args.load, "--load"),
        plot=_output(args.plot, "--plot"),
        json=bool(args.json),
    )


def _import_tqdm():
    from npconv.train.data import INSTALL_HINT

    try:
        from tqdm import tqdm
    except ImportError:
        raise ConvArgumentError("npconv train", f"tqdm for the progress bar: {INSTALL_HINT}",
                                "no tqdm installed") from None
    return tqdm


# ---------------------------------------------------------------------- networks


def load_network(target: str, classes: int, image_shape: tuple[int, int, int], flag: str = "--net"):
    """The built-in network or TOML file ``target``, adapted to the data; and what was changed."""
    from npconv import network_toml, networks
    from npconv.train.model import adapt

    if target in networks.BUILT_INS:
        options = {"classes": classes} if "classes" in networks.BUILT_INS[target].options else {}
        network = networks.build(target, **options)
    elif target.endswith(".toml") or Path(target).is_file():
        network = network_toml.load(target)
    else:
        raise ConvArgumentError(flag, f"a built-in network ({', '.join(networks.BUILT_INS)}) or a .toml file",
                                repr(target))
    return adapt(network, *image_shape, classes, argument=f"{flag} {target}")


# ---------------------------------------------------------------------- the run


@dataclass
class NetResult:
    """One network's run and its numbers for the report."""

    model: object
    run: object
    changes: list[str]
    formula: object

    @property
    def name(self) -> str:
        return self.model.name


def _progress_factory(tqdm):
    def make(total: int, description: str):
        return tqdm(total=total, desc=description, unit="step", file=sys.stderr, leave=False,
                    dynamic_ncols=True, mininterval=0.5)
    return make


def run(args: argparse.Namespace) -> int:
    """``npconv train``: check everything, train each network, report; the exit status."""
    started = time.perf_counter()
    settings = check_settings(args)
    tqdm = _import_tqdm()
    from npconv.bench import import_pyplot, plot_format

    pyplot = import_pyplot("--plot") if settings.plot else None
    if settings.plot:
        plot_format(settings.plot, pyplot, "--plot")  # a suffix matplotlib cannot write: before training
    try:
        return _run(settings, tqdm, pyplot, started)
    except KeyboardInterrupt:
        print("npconv train: interrupted before training started; nothing was trained or written",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(settings: Settings, tqdm, pyplot, started: float) -> int:
    from npconv.train import checkpoint, data
    from npconv.train.model import build_model

    dataset = data.load_npz(settings.data) if settings.data else data.load_digits()
    networks = [load_network(net, dataset.classes, dataset.image_shape) for net in settings.nets]
    models = [build_model(network, seed=settings.seed, method=settings.method) for network, _ in networks]
    if settings.load:
        checkpoint.load(settings.load, models)

    # These GEMMs are small: one BLAS thread runs them as fast as two, and a second thread that the
    # scheduler parks on a shared machine stalls every call (epochs of 0.2 s became 2-6 s, measured).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        results = _train_all(settings, dataset, models, networks, tqdm)
    return _finish(settings, dataset, models, results, pyplot, started)


def _train_all(settings: Settings, dataset, models, networks, tqdm) -> list[NetResult]:
    from npconv.train import counting, loop
    from npconv.train.optimizers import make_optimizer

    results: list[NetResult] = []
    for model, (_, changes) in zip(models, networks, strict=True):
        optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.lr, settings.momentum)
        result = NetResult(model, None, changes, counting.step_formula(model))
        results.append(result)
        result.run = loop.train(model, dataset, optimizer, epochs=settings.epochs,
                                batch_size=settings.batch_size, seed=settings.seed,
                                schedule=settings.schedule, progress=_progress_factory(tqdm))
        if result.run.status != "completed":
            break
    return results


def _finish(settings: Settings, dataset, models, results: list[NetResult], pyplot, started: float) -> int:
    from npconv.train import checkpoint

    report = Report(settings, dataset, results, [m.name for m in models[len(results):]],
                    time.perf_counter() - started)
    print(json.dumps(report.to_dict(), indent=2) if settings.json else report.render_text())
    if settings.save and results:
        checkpoint.save(settings.save, [r.model for r in results])
        kept = ", ".join(f"{r.name} (after {r.run.steps:,} steps)" for r in results)
        print(f"Weights of {kept} written to {settings.save}", file=sys.stderr if settings.json else sys.stdout)
    if settings.plot and results:
        plot_curves(results, settings.plot, pyplot)
        print(f"Learning curves written to {settings.plot}", file=sys.stderr if settings.json else sys.stdout)
    stopped = results[-1].run if results else None
    if stopped is not None and stopped.status == "diverged":
        raise ConvArgumentError("--lr", f"a learning rate at which the loss stays finite (for {results[-1].name})",
                                f"{settings.lr:g}: {stopped.message}")
    if stopped is not None and stopped.status == "interrupted":
        return EXIT_INTERRUPTED
    return 0


# ---------------------------------------------------------------------- the report


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


@dataclass
class Report:
    settings: Settings
    dataset: object
    results: list[NetResult]
    not_trained: list[str]
    seconds: float

    def _columns(self, result: NetResult) -> dict[str, str]:
        run, formula, model = result.run, result.formula, result.model
        counts = run.step_counts
        measured_forward = counts.per_image(counts.forward_mults) if counts else None
        measured_step = counts.per_image(counts.step_mults) if counts else None

        def check(measured: int | None, expected: int) -> str:
            if measured is None:
                return "-"
            return f"{measured:,} {'ok' if measured == expected else 'MISMATCH'}"

        times = run.epoch_seconds
        last = run.records[-1] if run.records else None
        return {
            "parameters": f"{model.parameter_count():,}",
            f"forward mults / image, formula ({formula.convention})": f"{formula.forward:,}",
            "forward mults / image, measured": check(measured_forward, formula.forward),
            "training-step mults / image, formula": f"{formula.step:,}",
            "training-step mults / image, measured": check(measured_step, formula.step),
            "training step / forward (mults)": f"{formula.step / formula.forward:.2f}x",
            "time per epoch (median)": _seconds(statistics.median(times) if times else None),
            "training time (all epochs)": _seconds(sum(times) if times else None),
            "final train loss": "-" if last is None else f"{last.train_loss:.4f}",
            "final train accuracy": _percent(None if last is None else last.train_accuracy),
            "final test accuracy": _percent(run.final_accuracy),
            "epochs completed": f"{len(run.records)} of {self.settings.epochs}",
        }

    def render_text(self) -> str:
        s = self.settings
        lines = [f"npconv train: {self.dataset.summary()}."]
        for result in self.results:
            if result.changes:
                lines.append(f"{result.name} adapted to the data: {'; '.join(result.changes)}.")
        momentum = f", momentum {s.momentum:g}" if s.optimizer == "sgd" else ""
        schedule = " (cosine annealing to 0 over the epochs)" if s.schedule == "cosine" else " (constant)"
        lines.append(f"Training: {s.optimizer}{momentum}, lr {s.lr:g}{schedule}, batch size {s.batch_size}, "
                     f"{s.epochs} epochs, method {s.method}, float32, {BLAS_THREADS} BLAS thread, seed {s.seed}" +
                     (f", weights from {s.load}" if s.load else "") + ".")
        lines.append("Mults are those of the conv and linear layers (MACs; a linear layer runs as a 1x1 "
                     "convolution); measured = what the kernels counted in the first training step, divided "
                     "by its batch size; a training step is the forward pass plus the input and weight "
                     "gradients (the first layer's input gradient is not computed).")
        lines.append("")
        columns = [self._columns(r) for r in self.results]
        header = ["", *(r.name for r in self.results)]
        rows = [header] + [[key, *(c[key] for c in columns)] for key in columns[0]] if columns else [header]
        lines += table(rows)
        lines += ["", "Per epoch: train loss (mean over the epoch's batches, as trained), test accuracy after "
                      "the epoch, seconds of training"]
        epochs = max((len(r.run.records) for r in self.results), default=0)
        epoch_rows = [["epoch", *(cell for r in self.results for cell in (f"{r.name} loss", "test acc", "time"))]]
        for e in range(epochs):
            cells = [str(e + 1)]
            for r in self.results:
                rec = r.run.records[e] if e < len(r.run.records) else None
                cells += ["-"] * 3 if rec is None else [f"{rec.train_loss:.4f}", _percent(rec.test_accuracy),
                                                        _seconds(rec.seconds)]
            epoch_rows.append(cells)
        lines += table(epoch_rows)
        lines.append("")
        for r in self.results:
            if r.run.status != "completed":
                test = r.run.final_test
                lines.append(f"{r.name}: {r.run.message}; test accuracy of the weights kept "
                             f"{_percent(test[1] if test else None)}.")
        if self.not_trained:
            lines.append(f"Not trained: {', '.join(self.not_trained)}.")
        lines.append(f"Total time {self.seconds:.1f} s (data, building, training, evaluation); "
                     f"load average {_load_average()}.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        networks = []
        for r in self.results:
            counts = r.run.step_counts
            networks.append({
                "name": r.name,
                "adapted": r.changes,
                "parameters": r.model.parameter_count(),
                "status": r.run.status,
                "message": r.run.message,
                "steps": r.run.steps,
                "formula": r.formula.to_dict(),
                "measured": None if counts is None else counts.to_dict(),
                "epochs": [rec.to_dict() for rec in r.run.records],
                "seconds_per_epoch_median": statistics.median(r.run.epoch_seconds) if r.run.records else None,
                "final_test_accuracy": r.run.final_accuracy,
            })
        d = self.dataset
        return {
            "data": {"description": d.description, "layout": d.layout, "scaling": d.scaling,
                     "train": len(d.y_train), "test": len(d.y_test), "classes": d.classes,
                     "image_shape_chw": list(d.image_shape)},
            "settings": self.settings.to_dict(),
            "networks": networks,
            "not_trained": self.not_trained,
            "seconds": self.seconds,
            "load_average": _load_average(),
        }


def _load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def plot_curves(results: list[NetResult], path: str, pyplot) -> None:
    """Training loss and test accuracy per epoch, one line per network, to ``path`` (whole or not at all),
    in the image format its suffix names (:func:`npconv.bench.plot_format`)."""
    from npconv import files
    from npconv.bench import plot_format

    figure, (loss_axes, accuracy_axes) = pyplot.subplots(1, 2, figsize=(10, 4))
    for r in results:
        epochs = [rec.epoch for rec in r.run.records]
        label = f"{r.name} ({r.model.parameter_count():,} params)"
        line, = loss_axes.plot(epochs, [rec.train_loss for rec in r.run.records], marker="o", label=f"{label}, train")
        loss_axes.plot(epochs, [rec.test_loss for rec in r.run.records], linestyle="--", color=line.get_color(),
                       label=f"{label}, test")
        accuracy_axes.plot(epochs, [100 * rec.test_accuracy for rec in r.run.records], marker="o",
                           color=line.get_color(), label=label)
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="loss", yscale="log")
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    try:
        files.write_atomically(path, lambda file: figure.savefig(file, dpi=100, format=plot_format(path, pyplot, "--plot")),
                               "--plot",
                               binary=True)
    finally:
        pyplot.close(figure)
