"""The registered kernel-sum operators: fake kernels and autograd, shared by every namespace.

The ops are declared once in C++ (csrc/lcw_fast.cpp) under `lcw_fast::` with CPU and CUDA kernels;
the Triton backend defines them (or a subset) under `lcw_fast_triton::`. Every namespace gets its
fake kernels and autograd formulas from `register_fakes` / `register_autograd` below, for the ops
it has, so the math of the backward pass is written once:

    d/dx_i sum_j k(|x_i - y_j|^2) = 2 sum_j w_ij (x_i - y_j),   w = k'(d) = -k(d)^3 / (2c)

Value-only ops (kernel_sum, kernel_sum_self) recompute the pairs in their backward:
`kernel_sum_grad(x, y)` returns that gradient; the gradient w.r.t. y is `kernel_sum_grad(y, x)`
because k is symmetric in its two arguments; `kernel_sum_grad_pair(x, y)` returns both from one
pass over the pairs (where the namespace has it; else the backward makes the two single calls).
The self-sum has its own gradient op, which counts every pair once and updates both of its points.

One-pass ops (ONE_PASS_OPS) return the value together with its gradient(s) from one visit of each
pair; their autograd saves the gradients and the backward only scales them by grad_output. Their
gradient outputs are not differentiable (no double backward).
"""
import torch

try:
    from . import _C  # noqa: F401  (loading it runs TORCH_LIBRARY and registers torch.ops.lcw_fast)

    EXTENSION_ERROR = None
except ImportError as exc:  # a broken or missing build; the reference and Triton backends still work
    EXTENSION_ERROR = exc

VALUE_OPS = ("kernel_sum", "kernel_sum_self")
GRAD_OPS = ("kernel_sum_grad", "kernel_sum_self_grad", "kernel_sum_grad_pair")
ONE_PASS_OPS = ("kernel_sum_value_grad", "kernel_sum_value_grad_pair", "kernel_sum_self_value_grad")
ALL_OPS = VALUE_OPS + GRAD_OPS + ONE_PASS_OPS


def has_extension() -> bool:
    return EXTENSION_ERROR is None


def kernel_ops(ns: str, dispatch_key: str) -> tuple:
    """The ops of ALL_OPS that `ns` registers with a kernel for `dispatch_key` ("CPU", "CUDA")."""
    lib = getattr(torch.ops, ns)
    return tuple(name for name in ALL_OPS
                 if hasattr(lib, name) and torch._C._dispatch_has_kernel_for_dispatch_key(f"{ns}::{name}", dispatch_key))


# Read once at import, so that backend resolution stays plain Python (torch.compile traces it).
EXTENSION_OPS = {key: kernel_ops("lcw_fast", key) if has_extension() else () for key in ("CPU", "CUDA")}


def has_cuda_kernels() -> bool:
    """True when the extension was built with its CUDA kernels."""
    return "kernel_sum" in EXTENSION_OPS["CUDA"]


_DEFINED = {}


def defined_ops(ns: str) -> tuple:
    """The ops of ALL_OPS that namespace `ns` defines, in ALL_OPS order (read once per namespace)."""
    if ns not in _DEFINED:
        lib = getattr(torch.ops, ns)
        _DEFINED[ns] = tuple(name for name in ALL_OPS if hasattr(lib, name))
    return _DEFINED[ns]


def _like(t):
    return torch.empty_like(t, memory_format=torch.contiguous_format)


def _scalar(t):
    return t.new_empty((), dtype=torch.float64)


# Output shapes of every op from its sample arguments (x[, y]); all are (value or grads in order).
_FAKES = {
    "kernel_sum": lambda x, y: _scalar(x),
    "kernel_sum_self": lambda x: _scalar(x),
    "kernel_sum_grad": lambda x, y: _like(x),
    "kernel_sum_self_grad": lambda x: _like(x),
    "kernel_sum_grad_pair": lambda x, y: (_like(x), _like(y)),
    "kernel_sum_value_grad": lambda x, y: (_scalar(x), _like(x)),
    "kernel_sum_value_grad_pair": lambda x, y: (_scalar(x), _like(x), _like(y)),
    "kernel_sum_self_value_grad": lambda x: (_scalar(x), _like(x)),
}


def register_fakes(ns: str) -> None:
    """Shape/dtype-only kernels for torch.compile and opcheck, for every op `ns` defines."""
    for name in defined_ops(ns):
        shapes = _FAKES[name]

        def fake(*args, _shapes=shapes, **kwargs):
            samples = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            return _shapes(*samples)

        torch.library.register_fake(f"{ns}::{name}", fake)


def _scaled(grad, weight, like):
    """grad * weight in the dtype of `like` (the input whose gradient this is)."""
    return grad * weight.to(like.dtype)


def register_autograd(ns: str) -> None:
    """Backward of the value ops (recomputing, from the gradient ops) and of the one-pass ops
    (scaling their saved gradients), for the ops `ns` defines."""
    ops = getattr(torch.ops, ns)
    defined = defined_ops(ns)
    has_pair_grad = "kernel_sum_grad_pair" in defined

    def setup_pair(ctx, inputs, output):
        x, y, gamma, precision = inputs
        ctx.save_for_backward(x, y)
        ctx.gamma, ctx.precision = gamma, precision

    def backward_pair(ctx, grad):
        x, y = ctx.saved_tensors
        gx = gy = None
        if has_pair_grad and ctx.needs_input_grad[0] and ctx.needs_input_grad[1]:
            gx, gy = ops.kernel_sum_grad_pair(x, y, ctx.gamma, ctx.precision)
            return _scaled(gx, grad, x), _scaled(gy, grad, y), None, None
        if ctx.needs_input_grad[0]:
            gx = _scaled(ops.kernel_sum_grad(x, y, ctx.gamma, ctx.precision), grad, x)
        if ctx.needs_input_grad[1]:
            gy = _scaled(ops.kernel_sum_grad(y, x, ctx.gamma, ctx.precision), grad, y)
        return gx, gy, None, None

    def setup_self(ctx, inputs, output):
        x, gamma, precision = inputs
        ctx.save_for_backward(x)
        ctx.gamma, ctx.precision = gamma, precision

    def backward_self(ctx, grad):
        (x,) = ctx.saved_tensors
        return _scaled(ops.kernel_sum_self_grad(x, ctx.gamma, ctx.precision), grad, x), None, None

    torch.library.register_autograd(f"{ns}::kernel_sum", backward_pair, setup_context=setup_pair)
    torch.library.register_autograd(f"{ns}::kernel_sum_self", backward_self, setup_context=setup_self)

    def setup_one_pass(ctx, inputs, output):
        ctx.mark_non_differentiable(*output[1:])
        # kernel_sum_value_grad gives d/dx only: a d/dy, if wanted, is computed in the backward.
        needs_y = len(inputs) == 4 and len(output) == 2 and ctx.needs_input_grad[1]
        ctx.save_for_backward(*output[1:], *(inputs[:2] if needs_y else ()))
        ctx.gamma, ctx.precision = inputs[-2], inputs[-1]

    def backward_one_pass(ctx, grad, *ignored):  # ignored: grad_outputs of the non-differentiable gradients
        saved = ctx.saved_tensors
        grads = list(saved[:len(ignored)])
        if len(saved) > len(grads):  # kernel_sum_value_grad with y requiring grad
            x, y = saved[len(grads):]
            grads.append(ops.kernel_sum_grad(y, x, ctx.gamma, ctx.precision))
        scaled = [_scaled(g, grad, g) if need else None for g, need in zip(grads, ctx.needs_input_grad)]
        return (*scaled, *[None] * (len(ctx.needs_input_grad) - len(scaled)))

    for name in ONE_PASS_OPS:
        if name in defined:
            torch.library.register_autograd(f"{ns}::{name}", backward_one_pass, setup_context=setup_one_pass)


if has_extension():
    register_fakes("lcw_fast")
    register_autograd("lcw_fast")
