"""The Triton backend: the kernel-sum ops registered as torch.ops.lcw_fast_triton.

The same ops as csrc/lcw_fast.cpp (see there and lcw_fast/ops.py for the exact semantics; fakes and
autograd come from lcw_fast.ops):

  kernel_sum(x, y), kernel_sum_self(x)              value only (0-dim float64), no gradient work
  kernel_sum_value_grad(x, y)                       (value, grad_x)            from one visit of each pair
  kernel_sum_value_grad_pair(x, y)                  (value, grad_x, grad_y)    from one visit of each pair
  kernel_sum_self_value_grad(x)                     (value, grad)              each unordered pair once
  kernel_sum_grad(x, y), kernel_sum_self_grad(x)    the gradient of the above

Kernels: lcw_fast/triton_fused.py (one fused pass, value and gradients together) for the small D its
table FUSED_SHAPES lists per dtype and gradient, lcw_fast/triton_blocked.py (Gram blocks, then W.Y on
tensor cores) for the rest; shared pieces and the environment
variables (LCW_FAST_POISON, LCW_FAST_SCRATCH_BYTES) in lcw_fast/triton_common.py. Gradients are d value
/ d x with d/dx_i sum_j k(|x_i - y_j|^2) = 2 sum_j w_ij (x_i - y_j); a self-sum counts each pair twice
(x_i sits on both sides), hence its factor 4. Non-finite contract: a NaN or Inf anywhere in the inputs
makes the value NaN and every gradient entry NaN.
"""
from typing import Tuple

import torch

from . import ops
from .triton_blocked import blocked_sum, blocked_value_grad
from .triton_common import Launch, finish
from .triton_fused import fused, takes


def _value(x, y, gamma, precision, self_sum):
    launch = Launch(x, y, gamma, precision, self_sum)
    with launch.device_guard():
        return (fused(launch, "none") if takes(launch.x.dtype, "none", launch.dim) else blocked_sum(launch))[0]


def _value_grad(x, y, gamma, precision, self_sum, grad):
    launch = Launch(x, y, gamma, precision, self_sum)
    with launch.device_guard():
        if takes(launch.x.dtype, grad, launch.dim):
            value, *grads = fused(launch, grad)
        else:
            value, *grads = blocked_value_grad(launch, grad)
    return (value,) + finish(value, grads, launch.out_dtypes)


@torch.library.custom_op("lcw_fast_triton::kernel_sum", mutates_args=())
def kernel_sum(x: torch.Tensor, y: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """sum_ij k(|x_i - y_j|^2); x: (n, D), y: (m, D) -> 0-dim float64."""
    return _value(x, y, gamma, precision, self_sum=False)


@torch.library.custom_op("lcw_fast_triton::kernel_sum_self", mutates_args=())
def kernel_sum_self(x: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """sum_ij k(|x_i - x_j|^2) over all n^2 ordered pairs, visiting upper-triangle tiles; -> 0-dim float64."""
    return _value(x, x, gamma, precision, self_sum=True)


@torch.library.custom_op("lcw_fast_triton::kernel_sum_value_grad", mutates_args=())
def kernel_sum_value_grad(x: torch.Tensor, y: torch.Tensor, gamma: float,
                          precision: str = "default") -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum_ij k(|x_i - y_j|^2) as 0-dim float64, its gradient wrt x: (n, D) in x's dtype)."""
    return _value_grad(x, y, gamma, precision, False, "x")


@torch.library.custom_op("lcw_fast_triton::kernel_sum_value_grad_pair", mutates_args=())
def kernel_sum_value_grad_pair(x: torch.Tensor, y: torch.Tensor, gamma: float, precision: str = "default"
                               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(value, grad wrt x in x's dtype, grad wrt y in y's dtype) from one visit of each pair."""
    return _value_grad(x, y, gamma, precision, False, "both")


@torch.library.custom_op("lcw_fast_triton::kernel_sum_self_value_grad", mutates_args=())
def kernel_sum_self_value_grad(x: torch.Tensor, gamma: float,
                               precision: str = "default") -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum_ij k(|x_i - x_j|^2) as 0-dim float64, its gradient: (n, D) in x's dtype), pairs visited once."""
    return _value_grad(x, x, gamma, precision, True, "both")[:2]


@torch.library.custom_op("lcw_fast_triton::kernel_sum_grad", mutates_args=())
def kernel_sum_grad(x: torch.Tensor, y: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """d/dx sum_ij k(|x_i - y_j|^2) -> (n, D) in x's dtype."""
    return _value_grad(x, y, gamma, precision, False, "x")[1]


@torch.library.custom_op("lcw_fast_triton::kernel_sum_self_grad", mutates_args=())
def kernel_sum_self_grad(x: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """d/dx sum_ij k(|x_i - x_j|^2), x on both sides -> (n, D) in x's dtype."""
    return _value_grad(x, x, gamma, precision, True, "both")[1]


ops.register_fakes("lcw_fast_triton")
ops.register_autograd("lcw_fast_triton")
