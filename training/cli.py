"""Command-line plumbing shared by the CLIs: flags generated from a config dataclass's fields.

Each field's metadata["help"] is its --help text; a field whose default is None is filled in later
from training.defaults (the help says so).

Errors, the same in every training CLI: one line on stderr, `python -m training.X: error: <message>`,
no usage block and no traceback. Exit status 2 for a flag error (argparse's own, and every ConfigError,
whether found while parsing or later, e.g. --device cuda without a GPU); 1 for the other user errors of
training.errors (no run folder, a run already there, data or weights missing, a non-finite loss, a lost
torchrun process). Anything else is a bug and keeps its traceback.
"""
import argparse
import dataclasses
import sys
import typing
from typing import Optional

from .defaults import STAGE_END_FID
from .errors import USER_ERRORS, ConfigError


FLAG_ERROR, USER_ERROR = 2, 1  # exit statuses (see the module docstring)


class Parser(argparse.ArgumentParser):
    """argparse with the CLIs' one-line errors: `prog: error: message`, exit status 2, no usage block."""

    def error(self, message: str):
        fail(self.prog, f"{message} (--help lists the flags)", FLAG_ERROR)


def parser_for(cls, prog: str, description: str, positional: tuple = ()) -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description=description)
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


def run_cli(module: str, function, *args):
    """Calls function(*args) for `python -m module`: a user error (training.errors) becomes a one-line
    error with the status of the module docstring."""
    try:
        return function(*args)
    except USER_ERRORS as error:
        fail(f"python -m {module}", str(error), FLAG_ERROR if isinstance(error, ConfigError) else USER_ERROR)


def fail(prog: str, message: str, status: int) -> None:
    """Prints `prog: error: message` (no traceback) and exits with `status`."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def restore(cls, stored: dict, **overrides):
    """The config `cls` saved in a run's config.json (extra keys ignored), with `overrides` applied."""
    names = {f.name for f in dataclasses.fields(cls)}
    return dataclasses.replace(cls(**{k: v for k, v in stored.items() if k in names}), **overrides)


def stage_end_fid_field():
    """--stage-end-fid: None means defaults.STAGE_END_FID (read when the stage ends), 0 skips the FID."""
    return field(None, f"generated images of the domain FID written when a stage ends (mnist5k, mnist, fmnist; "
                       f"default {STAGE_END_FID:,}: on a CPU about half of a 2-epoch run); 0 skips it",
                 minimum=NON_NEGATIVE)


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
    stage_end_fid: Optional[int] = stage_end_fid_field()

    def __post_init__(self):
        validate(self)
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one of them")
