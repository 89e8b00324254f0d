"""Resource report of the CUDA kernels in the built extension (lcw_fast/_C*.so), from its sm_90 cubins.

    python tests/cuda_sm90_report.py [--so PATH] [--json FILE]

For every kernel: registers, spill bytes (its stack frame plus local memory per thread: ptxas puts
spills there, and none of our kernels has local arrays), static shared bytes (dynamic shared memory is set at launch and not
in the cubin) and whether its SASS holds tensor-core instructions (HMMA / IMMA / DMMA / HGMMA).
Reads `cuobjdump --dump-resource-usage` and `cuobjdump -sass` (CUDA_HOME/bin, then PATH, then the
copy triton bundles). Prints a table, writes the JSON list to FILE, and exits with status 1 when a
kernel spills, 2 when there is no cubin or no cuobjdump.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENSOR_OPS = re.compile(r"\b(HMMA|IMMA|DMMA|HGMMA|IGMMA|QGMMA|BGMMA)\b")
# Names of lcw_fast::cuda::Prec's values in kernels.h's order, for readable kernel names.
PRECISIONS = ("tf32x3", "tf32", "bf16", "fp64")
RESOURCE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def find_cuobjdump():
    """Path of a cuobjdump, or None."""
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    candidates = [os.path.join(home, "bin", "cuobjdump"), shutil.which("cuobjdump")]
    try:
        import triton

        candidates.append(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump"))
    except ImportError:
        pass
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def demangle(names):
    """Readable names (c++filt when installed), in order."""
    cxxfilt = shutil.which("c++filt")
    if cxxfilt is None:
        return list(names)
    out = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def short_name(demangled):
    """'void lcw_fast::cuda::(anonymous namespace)::k<(lcw_fast::cuda::Prec)0, 64>(args)' -> 'k<(Prec)0, 64>'."""
    name = demangled.replace("(anonymous namespace)::", "").replace("lcw_fast::cuda::", "")
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"\(Prec\)(\d)", lambda m: PRECISIONS[int(m.group(1))], name)
    depth = 0
    for i, ch in enumerate(name):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0 and i > 0:
            return name[:i]
    return name


def parse_resources(text):
    """{mangled kernel: (registers, stack, shared, local)} from --dump-resource-usage output."""
    out, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Function ") and line.endswith(":"):
            current = line[len("Function "):-1]
        elif current and (m := RESOURCE.search(line)):
            out[current] = tuple(int(v) for v in m.groups())
            current = None
    return out


def parse_tensor_core(sass):
    """{mangled kernel: True when its SASS holds a tensor-core instruction}."""
    out, current = {}, None
    for line in sass.splitlines():
        if "Function :" in line:
            current = line.split("Function :", 1)[1].strip()
            out[current] = False
        elif current and TENSOR_OPS.search(line):
            out[current] = True
    return out


def report(so, cuobjdump):
    """The JSON rows for every kernel of the shared object `so`."""
    usage = subprocess.run([cuobjdump, "--dump-resource-usage", so], capture_output=True, text=True, check=True).stdout
    sass = subprocess.run([cuobjdump, "-sass", so], capture_output=True, text=True, check=True).stdout
    resources, tensor = parse_resources(usage), parse_tensor_core(sass)
    mangled = sorted(resources)
    rows = []
    for raw, pretty in zip(mangled, demangle(mangled)):
        regs, stack, shared, local = resources[raw]
        rows.append({"kernel": short_name(pretty), "mangled": raw, "registers": regs, "spill_bytes": stack + local,
                     "stack_bytes": stack, "local_bytes": local, "shared_bytes": shared,
                     "tensor_core": tensor.get(raw, False)})
    return sorted(rows, key=lambda r: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", r["kernel"])])


def default_so():
    found = sorted(glob.glob(os.path.join(ROOT, "lcw_fast", "_C*.so")))
    return found[0] if found else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--so", default=None, help="the extension to read (default: lcw_fast/_C*.so of this tree)")
    parser.add_argument("--json", default=None, help="write the rows as a JSON list to this file")
    args = parser.parse_args(argv)
    so = args.so or default_so()
    cuobjdump = find_cuobjdump()
    if so is None or cuobjdump is None:
        print(f"no extension ({so}) or no cuobjdump ({cuobjdump})", file=sys.stderr)
        return 2
    rows = report(so, cuobjdump)
    if not rows:
        print(f"{so} holds no CUDA kernels (built CPU-only?)", file=sys.stderr)
        return 2
    width = max(len(r["kernel"]) for r in rows)
    print(f"{'kernel':<{width}}  regs  spill  shared  tensor_core")
    for r in rows:
        print(f"{r['kernel']:<{width}}  {r['registers']:4d}  {r['spill_bytes']:5d}  {r['shared_bytes']:6d}  "
              f"{'yes' if r['tensor_core'] else 'no'}")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, args.json)
    spills = [r["kernel"] for r in rows if r["spill_bytes"]]
    if spills:
        print("spills in: " + ", ".join(spills), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
