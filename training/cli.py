"""Command-line plumbing shared by the CLIs: flags generated from a config dataclass's fields.

Each field's metadata["help"] is its --help text; a field whose default is None is filled in later
from training.defaults (the help says so).
"""
import argparse
import dataclasses
import sys
import typing
from typing import Optional

from .errors import USER_ERRORS, ConfigError


def parser_for(cls, prog: str, description: str, positional: tuple = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    shared = {f.name for f in dataclasses.fields(RunOptions)}
    fields = dataclasses.fields(cls)
    for f in [f for f in fields if f.name not in shared] + [f for f in fields if f.name in shared]:
        name = f.name if f.name in positional else "--" + f.name.replace("_", "-")
        shown = "" if f.default is None or f.name in positional else f" (default: {f.default})"
        kwargs = {"help": f.metadata["help"] + shown}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        kind = f.metadata.get("type", _plain(f.type))
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind
        if f.name not in positional:
            kwargs["default"] = f.default
        parser.add_argument(name, **kwargs)
    return parser


def _plain(annotation):
    """Optional[X] -> X."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def config_from_args(cls, module: str, description: str, argv=None, positional: tuple = ()):
    """Parses argv into a `cls` for `python -m module`; `description` heads --help."""
    parser = parser_for(cls, f"python -m {module}", description, positional)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    try:
        return cls(**vars(parser.parse_args(argv)))
    except ConfigError as error:
        parser.error(str(error))


POSITIVE, NON_NEGATIVE = (0, False), (0, True)  # field(minimum=...)


def field(default, help: str, type=None, choices=None, minimum=None):
    """A config field: `help` is its --help text; `minimum` = (bound, inclusive) checked by validate()."""
    metadata = {"help": help}
    if minimum is not None:
        metadata["minimum"] = minimum
    if type is not None:
        metadata["type"] = type
    if choices is not None:
        metadata["choices"] = choices
    return dataclasses.field(default=default, metadata=metadata)


def validate(config) -> None:
    """Raises ConfigError for the first field below its `minimum` (None means "from the defaults")."""
    for f in dataclasses.fields(config):
        value, minimum = getattr(config, f.name), f.metadata.get("minimum")
        if minimum is None or value is None:
            continue
        bound, inclusive = minimum
        if not (value >= bound if inclusive else value > bound):
            raise ConfigError(f"--{f.name.replace('_', '-')} must be {'>=' if inclusive else '>'} {bound}, got {value}")


def run_cli(function, *args):
    """Calls function(*args) for a CLI: a user error (training.errors) becomes a one-line error."""
    try:
        return function(*args)
    except USER_ERRORS as error:
        fail(str(error))


def fail(message: str) -> None:
    """Prints a one-paragraph error (no traceback) and exits with status 1."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def restore(cls, stored: dict, **overrides):
    """The config `cls` saved in a run's config.json (extra keys ignored), with `overrides` applied."""
    names = {f.name for f in dataclasses.fields(cls)}
    return dataclasses.replace(cls(**{k: v for k, v in stored.items() if k in names}), **overrides)


@dataclasses.dataclass
class RunOptions:
    """Flags every training command shares: where it runs, how it checkpoints and resumes."""
    device: str = field("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    amp: bool = field(False, "bf16 autocast (CUDA only)")
    threads: Optional[int] = field(None, "CPU threads of PyTorch (default: PyTorch's choice; 1 is fastest for the "
                                         "small MLPs, especially on a busy machine)", minimum=POSITIVE)
    resume: bool = field(False, "continue the run in --out from its last.pt (its config.json wins; --epochs may "
                                "extend, --chunk-size may change); a run stopped before its first checkpoint "
                                "starts over")
    overwrite: bool = field(False, "replace the run already in --out (without --resume or --overwrite, an "
                                   "existing run is refused)")
    chunk_size: Optional[int] = field(None, "rows per network pass, for batches whose activations do not fit: "
                                            "the loss stays exact over the whole batch, activations take memory "
                                            "for this many rows (BatchNorm then normalises each chunk; see "
                                            "training/loop.py). Default: the whole batch in one pass",
                                      minimum=POSITIVE)
    eval_every: int = field(100, "steps between validations on the held-out set (and best.pt)", minimum=POSITIVE)
    ckpt_every: int = field(100, "steps between last.pt checkpoints", minimum=POSITIVE)
    log_every: int = field(10, "steps between training-loss records in metrics.jsonl", minimum=POSITIVE)
    workers: int = field(2, "DataLoader workers for data sets that stream from disk", minimum=NON_NEGATIVE)
    progress: bool = field(True, "show a tqdm progress bar")
    sync_bn: bool = field(False, "under torchrun on CUDA, BatchNorm normalises over the rows of every process "
                                 "(torch's SyncBatchNorm); without it each process's rows (each chunk of them with "
                                 "--chunk-size) are normalised alone. config.json records batch_norm_rows")

    def __post_init__(self):
        validate(self)
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one of them")
