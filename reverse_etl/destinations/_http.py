"""Helpers for HTTP destinations."""

import time

from cdp.core.http import HttpTransport, RateLimiter


def transport_for(destination, headers: dict[str, str]) -> HttpTransport:
    options = destination.settings.options
    calls, period = destination.rate_limit
    sleep = destination.sleep or time.sleep
    return HttpTransport(
        destination.settings.base_url,
        headers,
        RateLimiter(
            int(options.get("rate_limit_calls", calls)),
            float(options.get("rate_limit_period", period)),
            sleep=sleep,
        ),
        timeout=float(options.get("timeout", 10)),
        max_retries=int(options.get("max_retries", 6)),
        backoff=float(options.get("backoff", 0.5)),
        sleep=sleep,
        name=destination.name,
    )
