"""Error types. The CLI turns any `ReidError` into one line on stderr and exit 1.

Messages say what is wrong, where, and how to fix it, e.g.
``f.h5:/train/features is 2048-d but m.pt embeds 512-d; re-run 'reid features --ckpt m.pt'``.
"""


class ReidError(Exception):
    """Base class of every error a user can cause and fix."""

    exit_code = 1


class InputError(ReidError):
    """A missing, empty, unreadable or malformed input (folder, image, file)."""


class FormatError(ReidError):
    """A file of another reidcli format, a newer version, or an invalid schema."""


class ConfigError(ReidError):
    """An invalid parameter value or an incompatible combination of options."""


class OutputError(ReidError):
    """An output that cannot be written (a full disk, ``ulimit -f``, a read-only folder)."""


class Terminated(BaseException):
    """SIGTERM arrived while an output was being written (`reidcli.io.atomic`); like
    KeyboardInterrupt it is no `Exception`, so only the CLI's top level catches it."""

    exit_code = 143  # 128 + SIGTERM
