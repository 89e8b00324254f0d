"""Compile report: every hot Triton kernel of lcw_fast compiled for sm_90 (H100/H200) without a GPU.

    python tests/triton_sm90_compile.py [--realistic] [--json FILE] [--quick] [--markdown]

Each variant goes through the full pipeline (TTIR -> TTGIR -> LLIR -> PTX -> cubin by ptxas) for each
autotune config, dtype and precision it is launched with. --realistic gives it the specialisation a real
launch at the headline sizes gets (n = m = 16384 for D <= 256, n = m = 4096 at D = 12288): pointers and
integer arguments divisible by 16 carry tt.divisibility = 16, arguments equal to 1 (unit strides) become
constants, and the band and block sizes are what the launchers compute. Prints one line per variant and
with --json writes a list of {kernel, config, D, dtype, precision, default, registers, spill_bytes,
shared_bytes, wgmma, mma_sync, triton, compile_s} (--markdown also prints it as a table): `default` marks a config the
autotuner may pick in default precision, `wgmma` that every product of the kernel runs on wgmma (no
mma.sync left). Exits non-zero when a default config spills (at any D, 12288 included), does not fit in
shared memory, or a float64 variant holds an approximate float64 instruction (e.g. rsqrt.approx.f64:
float64 must stay exact). The first and last lines name the Triton version whose compiler was checked:
the tables must be spill-free under every Triton the project supports (3.6 on the GPU machine, 3.8 here),
so run it under both (benchmarks/device_stack.sh runs it under 3.6). compile_s: the seconds the whole
pipeline took for a variant on this machine (0 where an identical specialisation was compiled before): a
lower bound for the JIT time of the same launch on the GPU machine.
The fused kernel is compiled for the (dtype, gradients, D) its table takes, the blocked kernels for
D = 12288 and the small D the fused kernel leaves them.
--quick compiles a few variants (tests/test_triton.py runs it). Run in a subprocess: the kernels must
not be in interpreter mode.
"""
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time

os.environ["TRITON_INTERPRET"] = "0"
os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="lcw-sm90-")  # a cache hit would skip ptxas' report
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton import knobs  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

from lcw_fast import triton_blocked as tb  # noqa: E402
from lcw_fast import triton_fused as tf  # noqa: E402
from lcw_fast.triton_common import size_bucket  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
SHARED_LIMIT = 232448  # opt-in shared memory per block on sm_90
SMS = 132  # H100 SXM / H200
SMALL_DIMS = (8, 16, 32, 64, 128, 256)
LATENT_N, DATA_N, DATA_D = 16384, 4096, 12288
REALISTIC = "--realistic" in sys.argv
QUICK = "--quick" in sys.argv
# (dtype, compute dtype, label, tl.dot precision, SPLIT): "default" precision for each dtype, and "fast" fp32
DTYPES = (("fp32", tl.float32, "3xtf32", "tf32", True), ("fp32", tl.float32, "tf32", "tf32", False),
          ("bf16", tl.float32, "bf16", "tf32", False), ("fp64", tl.float64, "fp64", "ieee", False))
GAMMA = (0.25, 0.0)


def padded(dim):
    """The dimension the launchers pad samples to (zero columns up to a multiple of 16)."""
    return (dim + 15) // 16 * 16


def specialise(kernel, args, constexprs):
    """(signature, constexprs, attrs) as a launch with these argument values gets them.

    args: pointer arguments as their type string ("*fp32"), the rest as example values."""
    signature, consts, attrs = {}, dict(constexprs), {}
    for index, name in enumerate(kernel.fn.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
            continue
        value = args[name]
        if isinstance(value, str):
            signature[name] = value
            divisible = True  # torch allocations are 256-byte aligned; the views used start on 16-byte rows
        elif isinstance(value, float):
            signature[name] = "fp32"
            divisible = False
        elif REALISTIC and value == 1:
            signature[name], consts[name] = "constexpr", 1
            continue
        else:
            signature[name] = "i64" if abs(value) >= 2**31 else "i32"
            divisible = value % 16 == 0
        if REALISTIC and divisible:
            attrs[(index,)] = [["tt.divisibility", 16]]
    return signature, consts, attrs


def fused_variants(everything=False):
    """(kernel, label, D, dtype, precision, args, constexprs, configs the autotuner may pick) for the small-D
    kernel, for the (dtype, gradients, D) it takes (all of them with `everything`)."""
    modes = (("value", False, "none"), ("grad_x", False, "x"), ("grad_pair", False, "both"), ("self", True, "both"))
    for dim in SMALL_DIMS:
        for dtype, compute, precision, dot_precision, split in DTYPES:
            acc = "fp64" if dtype == "fp64" else "fp32"
            for label, self_sum, grad in modes:
                if not (everything or tf.takes(dtype, grad, dim)):
                    continue
                n = m = LATENT_N
                band_rows, band_cols, _, _ = tf.bands(n, m, dim, self_sum, grad, 4 * SMS, 256 * 2**20)
                args = dict(xh_ptr=f"*{dtype}", xl_ptr=f"*{dtype}", xn_ptr=f"*{acc}", yh_ptr=f"*{dtype}",
                            yl_ptr=f"*{dtype}", yn_ptr=f"*{acc}", part_ptr="*fp64", gx_ptr=f"*{acc}",
                            gy_ptr=f"*{acc}", n=n, m=m, D=padded(dim), true_d=dim, band_rows=band_rows,
                            band_cols=band_cols, gamma_hi=GAMMA[0], gamma_lo=GAMMA[1], scale=2.0,
                            size_bucket=size_bucket(n, m))
                block_dim = tf.block_d(dim)
                constexprs = dict(SELF=self_sum, GRAD_X=grad != "none", GRAD_Y=grad == "both", BLOCK_D=block_dim,
                                  EVEN_D=block_dim == padded(dim), SPLIT=split, PRECISION=dot_precision, COMPUTE=compute)
                picks = tf.default_configs(dtype, grad, block_dim, self_sum) if tf.takes(dtype, grad, dim) else []
                yield tf._fused_kernel, f"fused {label}", dim, dtype, precision, args, constexprs, picks


def blocked_variants(dims):
    """The same for the large-D kernels (n = m = DATA_N), and for the small D the fused kernel leaves them."""
    for dim in dims:
        n = m = DATA_N
        for dtype, compute, precision, dot_precision, split in DTYPES:
            acc = "fp64" if dtype == "fp64" else "fp32"
            rows, cols = tb.block_sides(n, m, False, 256 * 2**20, 8 if dtype == "fp64" else 4)
            samples = dict(xh_ptr=f"*{dtype}", xl_ptr=f"*{dtype}", xn_ptr=f"*{acc}", yh_ptr=f"*{dtype}",
                           yl_ptr=f"*{dtype}", yn_ptr=f"*{acc}", n=n, m=m, D=padded(dim), true_d=dim,
                           gamma_hi=GAMMA[0],
                           gamma_lo=GAMMA[1], size_bucket=size_bucket(n, m))
            common = dict(SPLIT=split, PRECISION=dot_precision, COMPUTE=compute)
            for self_sum in (False, True):
                constexprs = dict(common, SELF=self_sum)
                if dim > tf.MAX_DIM or not tf.takes(dtype, "none", dim):
                    yield (tb._sum_kernel, f"sum SELF={self_sum}", dim, dtype, precision,
                           dict(samples, part_ptr="*fp64"), constexprs, tb.default_configs(tb._sum_kernel, dtype == "fp64"))
                if dim > tf.MAX_DIM or not tf.takes(dtype, "both" if self_sum else "x", dim):
                    yield (tb._weights_kernel, f"weights SELF={self_sum}", dim, dtype, precision,
                           dict(samples, w_ptr=f"*{acc}", part_ptr="*fp64", row0=0, col0=0, swn=cols,
                                value_weight=1.0), constexprs,
                           tb.default_configs(tb._weights_kernel, dtype == "fp64"))
            if dim > tf.MAX_DIM or not all(tf.takes(dtype, grad, dim) for grad in ("x", "both")):
                for side, (swr, swc) in (("rows", (cols, 1)), ("columns", (1, cols))):
                    yield (tb._wy_kernel, f"wy {side}", dim, dtype, precision,
                           dict(w_ptr=f"*{acc}", swr=swr, swc=swc, ah_ptr=f"*{dtype}", al_ptr=f"*{dtype}",
                                b_ptr=f"*{dtype}", sbn=padded(dim), sbd=1, out_ptr=f"*{acc}", rows=rows, inner=cols,
                                D=padded(dim),
                                scale=2.0, size_bucket=size_bucket(n, m)), common,
                           tb.default_configs(tb._wy_kernel, dtype == "fp64"))


def quick(variants):
    wanted = {("fused self", 16, "bf16", "bf16"), ("fused grad_x", 32, "fp32", "3xtf32"),
              ("weights SELF=True", 64, "fp32", "3xtf32"), ("wy columns", 64, "fp32", "3xtf32"),
              ("sum SELF=False", DATA_D, "fp64", "fp64")}
    return [v for v in variants if (v[1], v[2], v[3], v[4]) in wanted]


_COMPILED = {}  # variants that specialise alike (D is a runtime argument) compile once


def compile_one(kernel, args, constexprs, config):
    """(compiled kernel, ptxas' report on it, seconds the compile took: 0 when it was compiled before)."""
    constexprs = dict(constexprs, **config.kwargs)
    signature, consts, attrs = specialise(kernel, args, constexprs)
    src = triton.compiler.ASTSource(fn=kernel.fn, signature=signature, constexprs=consts, attrs=attrs)
    key = (src.hash(), config.num_warps, config.num_stages)
    if key not in _COMPILED:
        t0 = time.monotonic()
        _COMPILED[key] = _compile(src, config) + (time.monotonic() - t0,)
        return _COMPILED[key]
    return _COMPILED[key][:2] + (0.0,)


def _compile(src, config):
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        knobs.nvidia.dump_ptxas_log = True
        try:
            compiled = triton.compile(src, target=TARGET, options={"num_warps": config.num_warps,
                                                                   "num_stages": config.num_stages})
        finally:
            knobs.nvidia.dump_ptxas_log = False
    return compiled, log.getvalue()


def usage(ptxas_log):
    registers = re.findall(r"Used (\d+) registers", ptxas_log)
    stores = re.findall(r"(\d+) bytes spill stores", ptxas_log)
    loads = re.findall(r"(\d+) bytes spill loads", ptxas_log)
    return (int(registers[-1]) if registers else None,
            max([int(v) for v in stores + loads], default=0))


def config_label(config):
    kw = config.kwargs
    label = f"{kw['BLOCK_M']}x{kw['BLOCK_N']}"
    if "BLOCK_K" in kw:
        label += f"x{kw['BLOCK_K']}"
    return f"{label} w{config.num_warps} s{config.num_stages}"


def markdown(rows):
    """The report as a table, one line per kernel and dtype (for the README)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["kernel"], row["dtype"], row["precision"]), []).append(row)
    lines = ["| kernel | inputs | D | configs (default) | registers | spill bytes (default) | shared KiB | wgmma |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (kernel, dtype, precision), group in groups.items():
        dims = sorted({r["D"] for r in group})
        default = [r for r in group if r["default"]]
        regs = [r["registers"] for r in group]
        lines.append(f"| {kernel} | {dtype} {precision} | {', '.join(map(str, dims))} | {len(group)} ({len(default)}) "
                     f"| {min(regs)}–{max(regs)} | {max([r['spill_bytes'] for r in default], default=0)} "
                     f"| {max(r['shared_bytes'] for r in group) // 1024} "
                     f"| {'all' if all(r['wgmma'] for r in group) else 'none' if not any(r['wgmma'] for r in group) else 'some'} |")
    return "\n".join(lines)


def main():
    json_path = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    large_dims = (DATA_D,) + SMALL_DIMS
    variants = list(fused_variants()) + list(blocked_variants(large_dims))
    if QUICK:
        variants = quick(variants)
    failures, rows = 0, []
    print(f"triton {triton.__version__}: compiling {len(variants)} variants for sm_90", flush=True)
    for kernel, label, dim, dtype, precision, args, constexprs, picks in variants:
        is_default = precision != "tf32"  # "tf32": fp32 in "fast" mode
        for config in picks[:1] if QUICK else picks:
            default = is_default and config in picks
            name = f"{label} D={dim} {dtype} {precision} {config_label(config)}{' (default)' if default else ''}"
            try:
                compiled, log, seconds = compile_one(kernel, args, constexprs, config)
            except Exception as exc:  # report every failing variant, then fail
                failures += 1
                print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            registers, spills = usage(log)
            shared = compiled.metadata.shared
            ptx = compiled.asm["ptx"]
            wgmma, mma_sync = "wgmma.mma_async" in ptx, "mma.sync" in ptx
            rows.append(dict(kernel=label, config=config_label(config), D=dim, dtype=dtype, precision=precision,
                             default=default, registers=registers, spill_bytes=spills, shared_bytes=shared,
                             wgmma=wgmma and not mma_sync, mma_sync=mma_sync, triton=triton.__version__,
                             compile_s=round(seconds, 3)))
            problems = []
            if shared > SHARED_LIMIT:
                problems.append(f"needs {shared} bytes of shared memory, a block has {SHARED_LIMIT}")
            if spills:
                problems.append(f"spills {spills} bytes")
            approx = sorted(set(re.findall(r"\b[a-z]+\.approx[.a-z]*\.f64\b", ptx)))
            if dtype == "fp64" and approx:
                problems.append(f"approximate float64 instructions {approx}")
            bad = default and problems
            failures += bool(bad)
            status = "FAIL" if bad else "warn" if problems else "ok  "
            print(f"{status} {name}: {registers} registers, {spills} spill bytes, {shared} shared bytes, "
                  f"{'wgmma' if wgmma else 'no wgmma'}{', mma.sync' if mma_sync else ''}"
                  + (f"; {'; '.join(problems)}" if problems else ""), flush=True)
    spilling = sum(1 for r in rows if r["default"] and r["spill_bytes"])
    print(f"triton {triton.__version__}: {len(rows)} compiles, {sum(r['default'] for r in rows)} default configs, "
          f"{spilling} of them spill; {failures} failure(s)", flush=True)
    if "--markdown" in sys.argv:
        print(markdown(rows))
    if json_path:
        tmp = json_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, json_path)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
