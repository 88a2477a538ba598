"""One exception type for everything a user can get wrong, and a quiet stderr.

The CLI turns a UserError into a single line on stderr and exit code 2, so every
module can raise it deep inside and never print tracebacks at people who merely
passed a bad file or flag. For the same reason third-party native code (the
TFLite converter, TFLM) is kept from writing its log lines between ours unless
the user asks for them (`tinynas --verbose`, i.e. TINYNAS_VERBOSE=1).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

# Set by `tinynas --verbose`; an environment variable so that child processes
# (the TFLM measurement, torchrun workers) inherit the choice.
VERBOSE_ENV = "TINYNAS_VERBOSE"


_MARK = "\x1f"  # brackets an option's name in a message (see `option`)


def option(name: str) -> str:
    """An option's name inside an error message, in whichever terms the reader uses.

    The library's errors name its own parameters (`latency_ms`), so a script
    calling `tinynas.run(...)` reads the name it passed; the CLI prints the flag
    (`--latency-ms`). One message serves both: str(e) gives the first,
    `UserError.for_cli()` the second.
    """
    return f"{_MARK}{name}{_MARK}"


class UserError(Exception):
    """Bad input: the message says what is wrong and what to do about it."""

    exit_code = 2

    def _render(self, flag: bool) -> str:
        parts = super().__str__().split(_MARK)
        for i in range(1, len(parts), 2):
            parts[i] = "--" + parts[i].replace("_", "-") if flag else parts[i]
        return "".join(parts)

    def __str__(self) -> str:
        return self._render(flag=False)

    def for_cli(self) -> str:
        """The message with options written as command-line flags."""
        return self._render(flag=True)


def one_line(msg: str) -> str:
    """Collapse a message onto one line, so error output stays greppable."""
    return " ".join(str(msg).split())


def os_error_text(e: OSError) -> str:
    """'runs/x/a.json: Permission denied' rather than a traceback or an errno repr."""
    where = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        where = f"{where} -> {e.filename2}"
    what = e.strerror or str(e)
    return f"{where}: {what}" if where else what


def verbose() -> bool:
    """Whether the user asked to see third-party log lines (TINYNAS_VERBOSE)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


class CapturedStderr:
    """Capture C-level writes to fd 2 (TFLM and the TFLite converter log there, not to sys.stderr)."""

    def __enter__(self) -> "CapturedStderr":
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile(mode="w+b")
        self.saved_fd = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()  # Python-level writes made inside belong to the capture too
        os.dup2(self.saved_fd, 2)
        os.close(self.saved_fd)
        self._tmp.seek(0)
        self.text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()


def _repoint_log_handlers(old: Any, new: Any) -> None:
    """Move logging handlers created inside a quiet block off its stream, which is about to close.

    A library imported inside the block (absl, with TensorFlow) makes its handler on the
    sys.stderr of that moment; left there, its next message, in a later block, fails
    with "I/O operation on closed file".
    """
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    for lg in loggers:
        for h in lg.handlers:
            for sh in (h, getattr(h, "python_handler", None)):  # absl wraps a StreamHandler
                if isinstance(sh, logging.StreamHandler) and sh.stream is old:
                    sh.setStream(new)


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Hide what native libraries print to fd 2 inside the block, unless verbose.

    TF_CPP_MIN_LOG_LEVEL does not reach lines such as the converter's
    `fully_quantize: 0, inference_type: 6, ...`, which are printed directly;
    only redirecting the file descriptor does. When the block fails, the hidden
    lines are replayed, so the reason is never lost. Python's own sys.stderr
    (tinynas's progress lines and bars) still reaches the terminal.
    """
    if verbose():
        yield
        return
    cap = CapturedStderr()
    python_stderr = sys.stderr
    try:
        with cap:
            sys.stderr = open(os.dup(cap.saved_fd), "w", buffering=1, encoding="utf-8", errors="replace")
            try:
                yield
            finally:
                _repoint_log_handlers(sys.stderr, python_stderr)
                sys.stderr.close()
                sys.stderr = python_stderr
    except BaseException:
        sys.stderr.write(cap.text)
        raise


def import_tensorflow() -> Any:
    """TensorFlow, imported with its import-time log lines hidden unless verbose.

    Where oneDNN is on (this CPU), TF 2.21 prints absl's "All log messages
    before absl::InitializeLog() ..." and "oneDNN custom operations are on" at
    import whatever TF_CPP_MIN_LOG_LEVEL says, so the import itself has to sit
    inside quiet_native_logs.
    """
    with quiet_native_logs():
        import tensorflow as tf  # heavy: only where a Keras model or a conversion is needed
    return tf
