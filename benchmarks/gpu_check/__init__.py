"""The GPU check kit behind benchmarks/gpu_check.sh: one module per step, each run as

    python -m benchmarks.gpu_check STEP --out DIR --budget SECONDS [--rehearse]

Steps: build, ceilings, correctness, sanitizer, benchmarks (headline.py), training
(training_steps.py), summary. Rows go to DIR/results.jsonl the moment they are known (rows.py);
`python -m benchmarks.gpu_check end STEP ...` writes a step's verdict after its process ended.
"""
