"""Reusable log capture: every record of every logger (root, django, celery, ours) at DEBUG, as emitted by the
code, before any redaction filter, so a test proves the code never logs a value (the filter is a second line)."""

import logging
from collections.abc import Callable

_FORMATTER = logging.Formatter("%(name)s %(levelname)s %(message)s")


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        """Each record fully rendered: message with its args, traceback and stack, plus extra attributes."""
        out = []
        for record in self.records:
            try:
                text = _FORMATTER.format(record)
            except Exception:  # a malformed record is still searched, raw
                text = f"{record.msg!r} {record.args!r}"
            extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
            out.append(f"{text} {extras!r}" if extras else text)
        return out

    def assert_clean(self, secrets: list[str | bytes]) -> None:
        from tests.sessions_app.secretscan import encodings

        lines = self.lines()
        leaks = sorted(
            {(i, n) for n, line in enumerate(lines) for i, s in enumerate(secrets) for form in encodings(s) if form in line}
        )
        assert not leaks, "secret(s) in log lines: " + "; ".join(
            f"secret #{i} in a record of {self.records[n].name} ({self.records[n].levelname})" for i, n in leaks
        )


_STANDARD_ATTRS = set(vars(logging.LogRecord("x", logging.INFO, "x", 1, "x", None, None))) | {"message", "asctime"}


def start_capture() -> tuple[LogCapture, Callable[[], None]]:
    """Attach a capture at DEBUG to the root logger and to every logger that does not propagate; lower every
    configured level to DEBUG. Returns the capture and a function restoring everything."""
    capture = LogCapture()
    manager = logging.root.manager
    loggers = [logging.getLogger(name) for name in ("celery", "celery.task", "celery.app.trace", "django")]
    loggers += [lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    saved_levels = {lg: lg.level for lg in loggers + [logging.root]}
    attached = [logging.root] + [lg for lg in loggers if not lg.propagate]
    for lg in saved_levels:
        if lg.level != logging.NOTSET or lg is logging.root:
            lg.setLevel(logging.DEBUG)
    disabled = {lg: lg.disabled for lg in loggers}
    for lg in loggers:
        lg.disabled = False
    for lg in attached:
        lg.addHandler(capture)
    logging.disable(logging.NOTSET)

    def stop() -> None:
        for lg in attached:
            lg.removeHandler(capture)
        for lg, level in saved_levels.items():
            lg.setLevel(level)
        for lg, was in disabled.items():
            lg.disabled = was

    return capture, stop
