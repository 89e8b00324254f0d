// Declares the lcw_fast operators once. CPU kernels live in csrc/cpu, CUDA kernels in csrc/cuda;
// the Python side (lcw_fast/ops.py) adds register_fake and register_autograd.
//
// With c = 2D - 3 and k(d) = (gamma + d / c)^(-1/2):
//   kernel_sum(x, y, gamma)       = sum_ij k(|x_i - y_j|^2)            x: (n, D), y: (m, D) -> 0-dim float64
//   kernel_sum_self(x, gamma)     = sum_ij k(|x_i - x_j|^2)            x: (n, D)            -> 0-dim float64
//   kernel_sum_grad(x, y, gamma)  = d/dx sum_ij k(|x_i - y_j|^2)                            -> (n, D), dtype of x
//   kernel_sum_self_grad(x, gamma)= d/dx sum_ij k(|x_i - x_j|^2)  (x on both sides)          -> (n, D), dtype of x
//   kernel_sum_grad_pair(x, y, gamma) = (d/dx, d/dy) sum_ij k(|x_i - y_j|^2)
//                                   = (kernel_sum_grad(x, y), kernel_sum_grad(y, x)) from one pass
//                                                                    -> ((n, D) dtype of x, (m, D) dtype of y)
// One-pass ops: the value and the gradient(s) from one visit of each pair (a self-sum visits each
// unordered pair once), for the losses whose backward only scales the saved gradients:
//   kernel_sum_value_grad(x, y, gamma)      = (kernel_sum(x, y), kernel_sum_grad(x, y))
//   kernel_sum_value_grad_pair(x, y, gamma) = (kernel_sum(x, y), *kernel_sum_grad_pair(x, y))
//   kernel_sum_self_value_grad(x, gamma)    = (kernel_sum_self(x), kernel_sum_self_grad(x))
// Non-finite input (NaN or +-Inf anywhere in x or y): every value is NaN and every gradient
// entry is NaN.
// `precision` selects the GPU matmul precision: "default" (float32-accurate) or "fast" (TF32);
// CPU kernels are always exact and accept both.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing lcw_fast._C runs the static TORCH_LIBRARY initialisers below.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(lcw_fast, m) {
  m.def("kernel_sum(Tensor x, Tensor y, float gamma, str precision=\"default\") -> Tensor");
  m.def("kernel_sum_self(Tensor x, float gamma, str precision=\"default\") -> Tensor");
  m.def("kernel_sum_grad(Tensor x, Tensor y, float gamma, str precision=\"default\") -> Tensor");
  m.def("kernel_sum_self_grad(Tensor x, float gamma, str precision=\"default\") -> Tensor");
  m.def("kernel_sum_grad_pair(Tensor x, Tensor y, float gamma, str precision=\"default\") -> (Tensor, Tensor)");
  m.def("kernel_sum_value_grad(Tensor x, Tensor y, float gamma, str precision=\"default\") -> (Tensor, Tensor)");
  m.def("kernel_sum_value_grad_pair(Tensor x, Tensor y, float gamma, str precision=\"default\") -> (Tensor, Tensor, Tensor)");
  m.def("kernel_sum_self_value_grad(Tensor x, float gamma, str precision=\"default\") -> (Tensor, Tensor)");
}
