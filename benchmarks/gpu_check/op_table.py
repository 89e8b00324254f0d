"""Every kernel-sum op of a namespace, how to call it and what it must return.

Quantities, for samples x: (n, D), y: (m, D) and k(d) = (gamma + d / (2D - 3))^(-1/2):
  S = sum_ij k(|x_i - y_j|^2)        S_xx = sum_ij k(|x_i - x_j|^2) (all n^2 ordered pairs)
  dS/dx, dS/dy, dS_xx/dx              their gradients, shaped like the sample
The issue-11 ops (value and gradient from one pass) are listed too; `available(ns)` keeps the ops
a namespace has, so the kit checks whatever the build registered.
"""
from typing import Dict, List, NamedTuple, Tuple

import torch

from lcw_fast import reference


class Op(NamedTuple):
    """`args` is "xy" (called as op(x, y, gamma, precision)), "yx" (the same op on (y, x)) or "x"
    (op(x, gamma, precision)); `returns` names the quantities of its outputs, in order."""

    op: str
    args: str
    returns: Tuple[str, ...]


OPS: Dict[str, Op] = {o.op if o.args != "yx" else f"{o.op}[y,x]": o for o in (
    Op("kernel_sum", "xy", ("S",)),
    Op("kernel_sum_self", "x", ("S_xx",)),
    Op("kernel_sum_grad", "xy", ("dS/dx",)),
    Op("kernel_sum_grad", "yx", ("dS/dy",)),
    Op("kernel_sum_self_grad", "x", ("dS_xx/dx",)),
    Op("kernel_sum_grad_pair", "xy", ("dS/dx", "dS/dy")),
    Op("kernel_sum_value_grad", "xy", ("S", "dS/dx")),
    Op("kernel_sum_value_grad_pair", "xy", ("S", "dS/dx", "dS/dy")),
    Op("kernel_sum_self_value_grad", "x", ("S_xx", "dS_xx/dx")),
)}


def available(namespace: str) -> List[str]:
    """Names (keys of OPS) of the ops registered under torch.ops.<namespace>."""
    lib = getattr(torch.ops, namespace)
    return [name for name, o in OPS.items() if hasattr(lib, o.op)]


def call(namespace: str, name: str, x, y, gamma: float, precision: str) -> Tuple[torch.Tensor, ...]:
    """Runs OPS[name] of the namespace; always a tuple of outputs."""
    o = OPS[name]
    fn = getattr(getattr(torch.ops, namespace), o.op)
    args = {"xy": (x, y), "yx": (y, x), "x": (x,)}[o.args]
    out = fn(*args, gamma, precision)
    return out if isinstance(out, tuple) else (out,)


def expected(x: torch.Tensor, y: torch.Tensor, gamma: float) -> Dict[str, torch.Tensor]:
    """Every quantity in float64 on the samples as given (already rounded to their dtype), from
    the bounded-memory reference (no n*m or n*m*D buffer) and its autograd."""
    xd = x.detach().double().requires_grad_()
    yd = y.detach().double().requires_grad_()
    s = reference.kernel_sum_blocked(xd, yd, gamma)
    gx, gy = torch.autograd.grad(s, (xd, yd))
    xs = x.detach().double().requires_grad_()
    s_xx = reference.kernel_sum_blocked(xs, xs, gamma)
    (gs,) = torch.autograd.grad(s_xx, xs)
    return {"S": s.detach(), "S_xx": s_xx.detach(), "dS/dx": gx, "dS/dy": gy, "dS_xx/dx": gs}
