"""urllib3's WARNING at each retry of a request, kept out of the daemon's log.

A client told to retry a refused connection (PrometheusSource's quick retries) has
urllib3 log "Retrying (Retry(total=1, connect=0, ...)) after connection broken by
'NewConnectionError(...)'" at each attempt: with Prometheus down, a line a query a pool a
tick beside the decision line that already says "unreachable". How the call ended is its
caller's to say; urllib3's other warnings stay. A filter on urllib3's logger, as
backends.kubernetes_credentials puts one on its client's.
"""

from __future__ import annotations

import logging


class _RetryWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Retrying ("))


_filter = _RetryWarnings()


def quiet_retry_warnings() -> None:
    """From now on, for the process (adding the filter again changes nothing)."""
    logging.getLogger("urllib3.connectionpool").addFilter(_filter)
