"""An HTTP Retry-After header read as seconds to wait (RFC 9110, section 10.2.3).

A rate-limited or overloaded server (the Kubernetes API server's 429 and its 503 under
API Priority and Fairness, a proxy in front of Nomad) says how long to hold off, as
whole seconds or as an HTTP-date. One reading for every caller, so none guesses at the
format on its own: a value that is neither (garbled, negative, a date nobody writes) is
no request at all, and the caller keeps its own backoff.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

_SECONDS = re.compile(r"\d{1,12}(?:\.\d{1,6})?")  # delay-seconds (a fraction tolerated)


def retry_after_seconds(value: object, now: datetime) -> float | None:
    """Seconds the server asked to wait, from `now` (a date already past asks for 0);
    None where `value` is missing or is not a Retry-After (so it is ignored)."""
    if not isinstance(value, str | bytes):
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    if not text or not text[0].isalpha():  # "-5", "1e3", "inf": not a date either
        return None
    try:
        moment = parsedate_to_datetime(text)  # IMF-fixdate, RFC 850 and asctime
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # asctime carries no zone; HTTP-dates are GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def retry_after_header(headers: Mapping[str, Any] | None) -> str | None:
    """The Retry-After value of `headers` in any case of its name (the first, where a
    client keeps a header's values as a list, as slack-sdk does); None without one."""
    for name, value in (headers or {}).items():
        if isinstance(name, str) and name.lower() == "retry-after":
            first = value[0] if isinstance(value, list) and value else value
            return first if isinstance(first, str) else None
    return None
