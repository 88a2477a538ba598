"""The serial log a `tinynas lut measure` kit prints, and its parser.

Why a checksum on every line: a UART capture loses and flips bytes, and a
flipped digit in `cycles=` would otherwise become a wrong LUT entry that
nobody notices. Every record therefore ends in `crc=<8 hex>`, the CRC-32
(IEEE, as zlib.crc32) of the line from its keyword up to, not including,
" crc=". Lines that fail it, or lack it (truncated), are reported with
their line number and skipped; nothing unverified enters a table.

Format, version 1 (one record per line, fields separated by one space):

    TINYNAS_LUT v1 board=<id> kit=<kit id> part=<p>/<parts> clock_hz=<int> ticks_per_s=<int> runs=<int> warmup=<int> models=<int> crc=<hex8>
    ENTRY <index> <signature> cycles=<int> overhead=<int> runs=<int> crc=<hex8>
    FAIL <index> <signature> stage=<schema|allocate|invoke> crc=<hex8>
    END part=<p> entries=<int> failed=<int> crc=<hex8>

`index` is the entry's index in the kit manifest; `cycles` the mean cycles of
the model's op events (TFLM MicroProfiler) per invoke; `overhead` the mean
cycles of Invoke() outside those events. Anything before a keyword on a line
(boot noise) is ignored, as are lines without a keyword; the checksum decides
whether a record is intact.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .signature import parse_signature

LOG_MAGIC = "TINYNAS_LUT"
LOG_VERSION = 1
FAIL_STAGES = ("schema", "allocate", "invoke")

_KEYWORD = re.compile(r"(?:^|[^A-Za-z0-9_])(TINYNAS_LUT|ENTRY|FAIL|END)(?= )")
_FRAGMENT = re.compile(r"\b(?:crc|cycles|overhead|ticks_per_s)=")
_HEX8 = re.compile(r"[0-9a-f]{8}")
_RECORDS: dict[str, re.Pattern[str]] = {
    "TINYNAS_LUT": re.compile(
        r"TINYNAS_LUT v(?P<version>\d+) board=(?P<board>[a-z0-9][a-z0-9._-]*) kit=(?P<kit>[0-9a-f]+)"
        r" part=(?P<part>\d+)/(?P<parts>\d+) clock_hz=(?P<clock_hz>\d+) ticks_per_s=(?P<ticks_per_s>\d+)"
        r" runs=(?P<runs>\d+) warmup=(?P<warmup>\d+) models=(?P<models>\d+)"),
    "ENTRY": re.compile(r"ENTRY (?P<index>\d+) (?P<signature>\S+) cycles=(?P<cycles>\d+)"
                        r" overhead=(?P<overhead>\d+) runs=(?P<runs>\d+)"),
    "FAIL": re.compile(r"FAIL (?P<index>\d+) (?P<signature>\S+) stage=(?P<stage>[a-z]+)"),
    "END": re.compile(r"END part=(?P<part>\d+) entries=(?P<entries>\d+) failed=(?P<failed>\d+)"),
}


def crc_hex(body: str) -> str:
    """The checksum of one record body, as the firmware prints it."""
    return f"{zlib.crc32(body.encode('latin-1')) & 0xFFFFFFFF:08x}"


def seal(body: str) -> str:
    """A record line: body + ' crc=<hex8>' (the Python twin of the firmware's emit())."""
    return f"{body} crc={crc_hex(body)}"


def header_line(board: str, kit: str, part: int, parts: int, clock_hz: int, ticks_per_s: int,
                runs: int, warmup: int, models: int) -> str:
    return seal(f"{LOG_MAGIC} v{LOG_VERSION} board={board} kit={kit} part={part}/{parts} "
                f"clock_hz={clock_hz} ticks_per_s={ticks_per_s} runs={runs} warmup={warmup} "
                f"models={models}")


def entry_line(index: int, signature: str, cycles: int, overhead: int, runs: int) -> str:
    return seal(f"ENTRY {index} {signature} cycles={cycles} overhead={overhead} runs={runs}")


def fail_line(index: int, signature: str, stage: str) -> str:
    return seal(f"FAIL {index} {signature} stage={stage}")


def end_line(part: int, entries: int, failed: int) -> str:
    return seal(f"END part={part} entries={entries} failed={failed}")


@dataclass(frozen=True)
class LogIssue:
    """One line that was not accepted, and why (shown to the user, never silent)."""

    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


@dataclass(frozen=True)
class LogHeader:
    line: int
    board: str
    kit: str
    part: int
    parts: int
    clock_hz: int
    ticks_per_s: int
    runs: int
    warmup: int
    models: int


@dataclass(frozen=True)
class LogEntry:
    line: int
    index: int
    signature: str
    cycles: int
    overhead: int
    runs: int


@dataclass(frozen=True)
class LogFailure:
    line: int
    index: int
    signature: str
    stage: str


@dataclass
class LogSession:
    """Everything between one header and its END (one run of one kit part)."""

    header: LogHeader
    entries: list[LogEntry] = field(default_factory=list)
    failures: list[LogFailure] = field(default_factory=list)
    ended: bool = False


@dataclass
class ParsedLog:
    source: str
    sessions: list[LogSession] = field(default_factory=list)
    issues: list[LogIssue] = field(default_factory=list)
    noise_lines: int = 0

    @property
    def entries(self) -> list[LogEntry]:
        return [e for s in self.sessions for e in s.entries]


def _clip(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _verify(payload: str) -> tuple[str | None, str]:
    """(body, "") when the checksum holds, else (None, reason)."""
    body, sep, crc = payload.rpartition(" crc=")
    if not sep:
        return None, "truncated or garbled: no checksum"
    if not _HEX8.fullmatch(crc):
        short = len(crc) < 8 and all(c in "0123456789abcdef" for c in crc)
        return None, "truncated: checksum cut short" if short else "garbled checksum field"
    if crc_hex(body) != crc:
        return None, "checksum mismatch (garbled)"
    return body, ""


class _Parser:
    """Line-by-line state machine: a header opens a session, END closes it."""

    def __init__(self, source: str) -> None:
        self.log = ParsedLog(source)
        self.open: LogSession | None = None
        self.seen: set[int] = set()

    def issue(self, line: int, reason: str, text: str) -> None:
        self.log.issues.append(LogIssue(line, reason, _clip(text)))

    def close_open(self) -> None:
        s = self.open
        if s is not None and not s.ended:
            self.issue(s.header.line, "no END line for this part (log truncated or board reset)",
                       f"part {s.header.part}/{s.header.parts}")
        self.open = None

    def feed(self, n: int, raw: str) -> None:
        line = raw.strip().replace("\x00", "")
        m = _KEYWORD.search(line)
        if m is None:
            if _FRAGMENT.search(line):
                self.issue(n, "truncated or garbled: record keyword missing", line)
            else:
                self.log.noise_lines += bool(line)
            return
        payload = line[m.start(1):]
        body, why = _verify(payload)
        if body is None:
            self.issue(n, why, payload)
            return
        kind = m.group(1)
        rec = _RECORDS[kind].fullmatch(body)
        if rec is None:
            self.issue(n, f"malformed {kind} record (checksum ok: another log version?)", payload)
            return
        getattr(self, f"_{kind.lower()}")(n, rec.groupdict(), payload)

    def _tinynas_lut(self, n: int, g: dict[str, str], text: str) -> None:
        if int(g["version"]) != LOG_VERSION:
            self.issue(n, f"log version {g['version']} is not {LOG_VERSION}; upgrade tinynas", text)
            return
        self.close_open()
        ints = {k: int(v) for k, v in g.items() if k not in ("board", "kit", "version")}
        self.open = LogSession(LogHeader(line=n, board=g["board"], kit=g["kit"], **ints))
        self.log.sessions.append(self.open)
        self.seen = set()

    def _session_for(self, n: int, text: str) -> LogSession | None:
        """The open part a record belongs to; None (reported) when there is none."""
        if self.open is None:
            self.issue(n, "record outside a part: its TINYNAS_LUT header is missing or garbled", text)
            return None
        if self.open.ended:
            self.issue(n, "record after END without a new TINYNAS_LUT header", text)
            return None
        return self.open

    def _indexed(self, n: int, g: dict[str, str], text: str) -> LogSession | None:
        s = self._session_for(n, text)
        if s is None:
            return None
        try:
            parse_signature(g["signature"])
        except ValueError as e:
            self.issue(n, f"bad signature ({e})", text)
            return None
        idx = int(g["index"])
        if idx in self.seen:
            self.issue(n, f"entry {idx} reported twice in one part; keeping the first", text)
            return None
        self.seen.add(idx)
        return s

    def _entry(self, n: int, g: dict[str, str], text: str) -> None:
        if int(g["runs"]) < 1:
            self.issue(n, "runs=0: nothing was timed", text)
            return
        s = self._indexed(n, g, text)
        if s is not None:
            s.entries.append(LogEntry(n, int(g["index"]), g["signature"], int(g["cycles"]),
                                      int(g["overhead"]), int(g["runs"])))

    def _fail(self, n: int, g: dict[str, str], text: str) -> None:
        s = self._indexed(n, g, text)
        if s is not None:
            s.failures.append(LogFailure(n, int(g["index"]), g["signature"], g["stage"]))

    def _end(self, n: int, g: dict[str, str], text: str) -> None:
        s = self._session_for(n, text)
        if s is None:
            return
        s.ended = True
        got, said = len(s.entries), int(g["entries"])
        if got < said:
            self.issue(n, f"END says {said} entries were printed, {got} arrived intact "
                          "(the others are reported above)", text)


def parse_log(text: str, source: str = "log") -> ParsedLog:
    """Parse a captured serial log; never raises on content, only reports."""
    p = _Parser(source)
    for n, raw in enumerate(text.splitlines(), start=1):
        p.feed(n, raw)
    p.close_open()
    return p.log


def read_log(path: str | Path) -> ParsedLog:
    """Read and parse a log file; bytes are taken 1:1 (latin-1) so checksums see the wire."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"log file {p} does not exist; capture the kit's serial output to a file")
    return parse_log(p.read_bytes().decode("latin-1"), source=str(p))
