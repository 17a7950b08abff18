"""SIPp's time formats (stat.cpp formatTime, msToHHMMSS, msToHHMMSSus), shared by every output file.

Lab scripts split these fields on their exact shape, so they are reproduced digit for digit:
the default date is three tab-separated parts (date, time, epoch), and -rfc3339 swaps it for
one ISO 8601 stamp with the local UTC offset ("Z" when it is zero).
"""

from __future__ import annotations

from datetime import datetime


def _utc_offset(moment: datetime) -> str:
    offset = moment.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    if seconds == 0:
        return "Z"
    sign = "+" if seconds > 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def format_time(timestamp: float, rfc3339: bool = False) -> str:
    """Local time with microseconds: 'YYYY-MM-DD<TAB>HH:MM:SS.uuuuuu<TAB>EPOCH.uuuuuu', or RFC 3339."""
    moment = datetime.fromtimestamp(timestamp).astimezone()
    micros = moment.microsecond
    if rfc3339:
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{micros:06d}{_utc_offset(moment)}"
    return f"{moment:%Y-%m-%d}\t{moment:%H:%M:%S}.{micros:06d}\t{int(timestamp):010d}.{micros:06d}"


def hhmmss(milliseconds: float) -> str:
    """Whole seconds as HH:MM:SS (the hours grow past 99 rather than wrap)."""
    seconds = int(milliseconds) // 1000
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def hhmmss_us(milliseconds: float) -> str:
    """HH:MM:SS:uuuuuu of a whole number of milliseconds: SIPp truncates every duration to the
    millisecond before printing, so the last three digits are always 000."""
    whole_ms = int(milliseconds)
    seconds, ms = divmod(whole_ms, 1000)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}:{ms * 1000:06d}"
