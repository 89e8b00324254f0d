"""Benchmarks of lcw-fast against the materialising PyTorch reference, KeOps and the hardware roofline.

`python -m benchmarks.run --help` runs a sweep; see benchmarks/run.py (orchestration), providers.py
(the implementations compared), suites.py (workloads and size grids), timing.py (timers, memory),
roofline.py (FLOP/byte counts and measured ceilings) and report.py (CSV/JSON, Markdown, plots).
`bash benchmarks/gpu_check.sh` is the one prepared run on a GPU (gpu_check/: its steps).
"""
