"""The Triton backend's GPU acceptance figures (issue 3), measured in one run on one CUDA device.

    python benchmarks/triton_acceptance.py [--out benchmarks/results]

1. latent:  cw_normality fwd+bwd, n=16,384, D=64, float32 default mode, against the paper's code path
            (torch.cdist(...)**2 then the formula: lcw_fast.reference with exact=False).
2. scale:   cw_normality fwd+bwd at n=1,048,576, D=64: time and peak GPU memory.
3. data:    cw_distance(x, y) with grad w.r.t. y, n=m=4,096, D=12,288: float32 default mode against the
            reference at PyTorch's default precision; bf16 inputs in TFLOP/s against torch.matmul bf16.
4. accuracy of every mode at these sizes against float64 (value error in units of the CW terms' scale,
            gradient relative L2 error).
Writes raw timings (ms, triton.testing.do_bench medians) with device, versions and commit to a JSON
file under --out and prints a Markdown table.
"""
import argparse
import datetime
import json
import os
import sys

import torch
import triton
from triton.testing import do_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import lcw_fast  # noqa: E402
from benchmarks.run import device_name, git_commit  # noqa: E402
from lcw_fast import reference  # noqa: E402
from lcw_fast.reference import cw_distance_scale, cw_normality_scale, errors  # noqa: E402


def fwd_bwd(fn, *inputs):
    """A callable running fn(*inputs) and its backward into inputs (grads reset each call)."""
    def run():
        for t in inputs:
            t.grad = None
        fn(*inputs).backward()
    return run


def timed(run):
    run()  # compile and autotune outside the timing
    return do_bench(run, warmup=5, rep=200, return_mode="median")


def normality(z, precision="default"):
    return lcw_fast.cw_normality(z, backend="triton", precision=precision)


def distance(gamma, precision="default"):
    return lambda x, y: lcw_fast.cw_distance(x, y, gamma, backend="triton", precision=precision)


def latent(results):
    z = torch.randn(16384, 64, device="cuda", requires_grad=True)
    gamma = lcw_fast.normality_gamma(z.shape[0])
    ours = timed(fwd_bwd(normality, z))
    ref = timed(fwd_bwd(lambda a: reference.cw_normality(a, gamma, exact=False), z))
    results["latent"] = {"n": 16384, "D": 64, "triton_ms": ours, "reference_ms": ref, "speedup": ref / ours,
                         "target_speedup": 15}
    zd = z.detach().double().requires_grad_()
    expected = reference.cw_normality(zd, gamma)
    (expected_grad,) = torch.autograd.grad(expected, zd)
    scale = cw_normality_scale(z, gamma)
    for precision in ("default", "fast"):
        zz = z.detach().clone().requires_grad_()
        value = normality(zz, precision)
        (grad,) = torch.autograd.grad(value, zz)
        results["accuracy"].append({"case": "latent cw_normality n=16384 D=64", "mode": f"float32 {precision}",
                                    "value_err_over_scale": abs(value.item() - expected.item()) / scale,
                                    "grad_rel_l2": errors(grad, expected_grad)[2]})


def scale(results):
    z = torch.randn(1 << 20, 64, device="cuda", requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fwd_bwd(normality, z)()  # autotune once
    start.record()
    fwd_bwd(normality, z)()
    end.record()
    torch.cuda.synchronize()
    results["scale"] = {"n": 1 << 20, "D": 64, "fwd_bwd_ms": start.elapsed_time(end),
                        "peak_extra_gb": (torch.cuda.max_memory_allocated() - base) / 2**30, "target_peak_gb": 2}


def data_space(results):
    n = m = 4096
    dim = 12288
    x = torch.randn(n, dim, device="cuda")
    y = (torch.randn(m, dim, device="cuda") * 1.1 + 0.05).requires_grad_()
    gamma = lcw_fast.silverman_gamma(1.0, n)
    ours = timed(fwd_bwd(lambda b: distance(gamma)(x, b), y))
    ref = timed(fwd_bwd(lambda b: reference.cw_distance(x, b, gamma, exact=False), y))
    xb, yb = x.bfloat16(), y.detach().bfloat16().requires_grad_()
    ours_bf16 = timed(fwd_bwd(lambda b: distance(gamma)(xb, b), yb))
    a, b = torch.randn(n, dim, device="cuda", dtype=torch.bfloat16), torch.randn(dim, m, device="cuda", dtype=torch.bfloat16)
    matmul = do_bench(lambda: a @ b, warmup=5, rep=200, return_mode="median")
    # Gram products of fwd (xx and yy upper triangles, xy) and bwd w.r.t. y (yy and yx: Gram and w @ x)
    flops = 2 * dim * (n * n / 2 + m * m / 2 + n * m + 2 * m * m + 2 * n * m)
    results["data"] = {
        "n": n, "m": m, "D": dim, "triton_f32_ms": ours, "reference_f32_ms": ref, "speedup_f32": ref / ours,
        "target_speedup_f32": 3, "triton_bf16_ms": ours_bf16, "triton_bf16_tflops": flops / ours_bf16 / 1e9,
        "matmul_bf16_tflops": 2 * n * m * dim / matmul / 1e9, "target_fraction_of_matmul": 0.5}
    results["data"]["fraction_of_matmul"] = results["data"]["triton_bf16_tflops"] / results["data"]["matmul_bf16_tflops"]
    xd, yd = x.double(), y.detach().double().requires_grad_()
    expected = reference.cw_distance(xd, yd, gamma)
    (expected_grad,) = torch.autograd.grad(expected, yd)
    unit = cw_distance_scale(x, y, gamma)
    for mode, xs, ys, precision in (("float32 default", x, y, "default"), ("float32 fast", x, y, "fast"),
                                    ("bfloat16 default", xb, yb, "default")):
        yy = ys.detach().clone().requires_grad_()
        value = distance(gamma, precision)(xs, yy)
        (grad,) = torch.autograd.grad(value, yy)
        results["accuracy"].append({"case": "data cw_distance n=m=4096 D=12288", "mode": mode,
                                    "value_err_over_scale": abs(value.item() - expected.item()) / unit,
                                    "grad_rel_l2": errors(grad, expected_grad)[2]})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"),
                        help="folder for the JSON file (default: benchmarks/results)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    torch.manual_seed(0)
    commit, dirty = git_commit()  # honours LCW_FAST_GIT_COMMIT: device copies of the tree have no .git
    results = {"device": device_name(torch.device("cuda")), "torch": torch.__version__, "triton": triton.__version__,
               "commit": commit, "dirty": dirty, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "accuracy": []}
    for part in (latent, scale, data_space):
        part(results)
        torch.cuda.empty_cache()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"triton_acceptance_{results['device'].replace(' ', '_')}_{commit[:8]}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps({k: v for k, v in results.items() if k != "accuracy"}, indent=2))
    print("\n| case | mode | value error / term scale | grad rel L2 |\n|---|---|---|---|")
    for row in results["accuracy"]:
        print(f"| {row['case']} | {row['mode']} | {row['value_err_over_scale']:.1e} | {row['grad_rel_l2']:.1e} |")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
