"""The user errors of the training commands: the CLIs print each as one line, without a traceback
(training.cli.run_cli: `python -m training.X: error: ...`, exit status 2 for a ConfigError, 1 for
the others). Anything else is a bug and keeps its traceback."""


class ConfigError(ValueError):
    """A flag value out of range or inconsistent with the others."""


class DataUnavailable(RuntimeError):
    """A data set could not be downloaded or read; the message says which files to place where."""


class NotARun(FileNotFoundError):
    """A folder given as a run has no config.json."""


class RunExists(FileExistsError):
    """The output folder already holds a run, and neither --resume nor --overwrite was given."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


class RankFailed(RuntimeError):
    """Another process of a multi-process (torchrun) job died or could not be reached."""


USER_ERRORS = (ConfigError, DataUnavailable, NotARun, RunExists, NonFiniteLoss, RankFailed)
