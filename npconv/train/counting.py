"""A training step's multiplications from the formulas, layer by layer, to set beside what was counted.

For each convolution and linear layer of a model, :func:`step_formula` takes
its geometry (one image: the network rows have batch 1) and the gradients
the model computes for it -- weight and bias always, input only when a layer
before it learns (the model's first convolution computes no input gradient,
as PyTorch's autograd does not) -- and adds up
:func:`npconv.formulas.training_step_mults` (forward plus backward).  The
convention is the one the layers' method executes (``dense`` for
``reference`` and ``im2col``, ``effective`` for ``direct``).

What is counted is what :mod:`npconv.network` counts: the mults of the
layers that multiply activations by weights.  Batch norm, pooling, ReLU and
the loss are not in them.
"""

from __future__ import annotations

from dataclasses import dataclass

from npconv import formulas as F
from npconv import kernels
from npconv.train import layers as L
from npconv.train.model import Model


@dataclass(frozen=True)
class LayerStep:
    """One weighted layer's share of a training step, per image."""

    name: str
    needs: tuple[str, ...]
    forward: int
    backward: int


@dataclass(frozen=True)
class StepFormula:
    """Per-image mults of a model's training step, from the closed forms."""

    convention: str
    layers: tuple[LayerStep, ...]

    @property
    def forward(self) -> int:
        return sum(layer.forward for layer in self.layers)

    @property
    def backward(self) -> int:
        return sum(layer.backward for layer in self.layers)

    @property
    def step(self) -> int:
        return self.forward + self.backward

    def to_dict(self) -> dict[str, object]:
        return {"convention": self.convention, "forward_mults": self.forward, "backward_mults": self.backward,
                "step_mults": self.step,
                "layers": [{"name": s.name, "needs": list(s.needs), "forward_mults": s.forward,
                            "backward_mults": s.backward} for s in self.layers]}


def _needs_by_layer(model: Model) -> dict[int, bool]:
    """``id(layer) -> whether its input gradient is computed``, walking the model as backward does."""
    needed: dict[int, bool] = {}

    def walk(sequence: L.Sequential, need_input_grad: bool) -> None:
        for layer, need in zip(sequence.items, sequence.input_grad_needed(need_input_grad), strict=True):
            needed[id(layer)] = need
            if isinstance(layer, L.Residual):
                walk(layer.main, need)
                walk(layer.shortcut, need)

    walk(model.body, False)
    return needed


def step_formula(model: Model, convention: str | None = None) -> StepFormula:
    """The closed-form mults of one training step of ``model``, per image, layer by layer.

    ``convention``: default, the one ``model.method`` executes.
    """
    convention = convention or kernels.load(model.method).CONVENTIONS[0]
    input_needed = _needs_by_layer(model)
    rows = {row.name: row for row in model.network.rows}
    steps = []
    for layer in model.weighted_layers():
        geometry = rows[layer.name].geometry
        has_bias = (geometry.depthwise.bias or geometry.pointwise.bias) if isinstance(layer, L.Separable) \
            else geometry.bias
        needs = (*(("input",) if input_needed[id(layer)] else ()), "weight", *(("bias",) if has_bias else ()))
        if isinstance(layer, L.Separable):
            forward = F.separable_mults(geometry, convention)
            backward = F.separable_backward_mults_total(geometry, convention, needs)
        else:
            forward = F.mults(geometry, convention)
            backward = F.backward_mults_total(geometry, convention, needs)
        steps.append(LayerStep(layer.name, needs, int(forward), int(backward)))
    return StepFormula(convention, tuple(steps))
