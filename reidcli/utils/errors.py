"""Error types. The CLI turns any `ReidError` into one line on stderr and its ``exit_code``:
1, or 2 for bad usage (`reidcli.utils.params.NotApplicable`: a flag that would do nothing).

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
    """SIGTERM or SIGHUP arrived while a command ran (`reidcli.io.atomic.sigterm_raises`);
    like KeyboardInterrupt it is no `Exception`, so only the CLI's top level catches it.
    ``Terminated(signum)``: the exit code is 128 + the signal's number (143 for SIGTERM)."""

    @property
    def signum(self) -> int:
        import signal

        return int(self.args[0]) if self.args and isinstance(self.args[0], int) else int(signal.SIGTERM)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        import signal

        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"
