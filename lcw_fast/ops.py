"""The registered kernel-sum operators: fake kernels and autograd, shared by every namespace.

Five ops are declared once in C++ (csrc/lcw_fast.cpp) under `lcw_fast::` with CPU and CUDA kernels;
the Triton backend defines the first four under `lcw_fast_triton::`. Both get their fake kernels and
autograd formulas from `register_fakes` / `register_autograd` below, so the math of the backward
pass is written once:

    d/dx_i sum_j k(|x_i - y_j|^2) = 2 sum_j w_ij (x_i - y_j),   w = k'(d) = -k(d)^3 / (2c)

`kernel_sum_grad(x, y)` returns that gradient; the gradient w.r.t. y is `kernel_sum_grad(y, x)`
because k is symmetric in its two arguments; `kernel_sum_grad_pair(x, y)` returns both from one
pass over the pairs (lcw_fast:: only; elsewhere the backward makes the two single calls). The
self-sum has its own gradient op, which counts every pair once and updates both of its points.
"""
import torch

try:
    from . import _C  # noqa: F401  (loading it runs TORCH_LIBRARY and registers torch.ops.lcw_fast)

    EXTENSION_ERROR = None
except ImportError as exc:  # a broken or missing build; the reference and Triton backends still work
    EXTENSION_ERROR = exc


def has_extension() -> bool:
    return EXTENSION_ERROR is None


def has_cuda_kernels() -> bool:
    """True when the extension was built with its CUDA kernels."""
    return has_extension() and torch._C._dispatch_has_kernel_for_dispatch_key("lcw_fast::kernel_sum", "CUDA")


def register_fakes(ns: str) -> None:
    """Shape/dtype-only kernels for torch.compile and opcheck."""

    @torch.library.register_fake(f"{ns}::kernel_sum")
    def _kernel_sum_fake(x, y, gamma, precision="default"):
        return x.new_empty((), dtype=torch.float64)

    @torch.library.register_fake(f"{ns}::kernel_sum_self")
    def _kernel_sum_self_fake(x, gamma, precision="default"):
        return x.new_empty((), dtype=torch.float64)

    @torch.library.register_fake(f"{ns}::kernel_sum_grad")
    def _kernel_sum_grad_fake(x, y, gamma, precision="default"):
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    @torch.library.register_fake(f"{ns}::kernel_sum_self_grad")
    def _kernel_sum_self_grad_fake(x, gamma, precision="default"):
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    if hasattr(getattr(torch.ops, ns), "kernel_sum_grad_pair"):

        @torch.library.register_fake(f"{ns}::kernel_sum_grad_pair")
        def _kernel_sum_grad_pair_fake(x, y, gamma, precision="default"):
            return (torch.empty_like(x, memory_format=torch.contiguous_format),
                    torch.empty_like(y, memory_format=torch.contiguous_format))


def register_autograd(ns: str) -> None:
    """Backward of the two forward ops, built from the namespace's gradient ops."""
    ops = getattr(torch.ops, ns)
    has_pair_grad = hasattr(ops, "kernel_sum_grad_pair")

    def setup_pair(ctx, inputs, output):
        x, y, gamma, precision = inputs
        ctx.save_for_backward(x, y)
        ctx.gamma, ctx.precision = gamma, precision

    def backward_pair(ctx, grad):
        x, y = ctx.saved_tensors
        gx = gy = None
        if has_pair_grad and ctx.needs_input_grad[0] and ctx.needs_input_grad[1]:
            gx, gy = ops.kernel_sum_grad_pair(x, y, ctx.gamma, ctx.precision)
            return gx * grad.to(x.dtype), gy * grad.to(y.dtype), None, None
        if ctx.needs_input_grad[0]:
            gx = ops.kernel_sum_grad(x, y, ctx.gamma, ctx.precision) * grad.to(x.dtype)
        if ctx.needs_input_grad[1]:
            gy = ops.kernel_sum_grad(y, x, ctx.gamma, ctx.precision) * grad.to(y.dtype)
        return gx, gy, None, None

    def setup_self(ctx, inputs, output):
        x, gamma, precision = inputs
        ctx.save_for_backward(x)
        ctx.gamma, ctx.precision = gamma, precision

    def backward_self(ctx, grad):
        (x,) = ctx.saved_tensors
        return ops.kernel_sum_self_grad(x, ctx.gamma, ctx.precision) * grad.to(x.dtype), None, None

    torch.library.register_autograd(f"{ns}::kernel_sum", backward_pair, setup_context=setup_pair)
    torch.library.register_autograd(f"{ns}::kernel_sum_self", backward_self, setup_context=setup_self)


if has_extension():
    register_fakes("lcw_fast")
    register_autograd("lcw_fast")
