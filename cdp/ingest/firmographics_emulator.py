"""Company-data API emulator in the shape of Clearbit's Company API: GET
/v2/companies/find?domain=<domain> with a Bearer key answers 200 with the company (name,
category.industry, metrics.employees, metrics.annualRevenue in USD, geo.countryCode), 404
unknown_record for domains it does not know, 202 while a first lookup is still queued, 422 for a
missing domain, 401 for a wrong key and 429 with Retry-After above its rate limit. Companies are
derived from the domain, so every run answers the same."""

import hashlib
from urllib.parse import parse_qs, urlparse

from cdp.core.emulator import Emulator

INDUSTRIES = ("Software", "Maschinenbau", "Handel", "Automotive", "Logistik", "Finanzen", "Medien")
COUNTRIES = ("DE", "DE", "DE", "AT", "CH", "NL", "FR")


def _digest(domain: str) -> int:
    return int(hashlib.sha256(domain.encode()).hexdigest()[:12], 16)


class FirmographicsEmulator(Emulator):
    def __init__(
        self,
        token: str = "test-token",
        rate_limit=(50, 1.0),
        unknown_share: float = 0.15,
        queued_share: float = 0.05,
    ):
        super().__init__(token=token, rate_limit=rate_limit)
        self.unknown_share, self.queued_share = unknown_share, queued_share
        self.lookups: dict[str, int] = {}

    def held(self) -> dict[str, dict]:
        """The domains it was asked about, and how often."""
        return {domain: {"lookups": n} for domain, n in self.lookups.items()}

    def company(self, domain: str) -> dict | None:
        h = _digest(domain)
        if (h % 1000) / 1000 < self.unknown_share:
            return None
        stem = domain.split(".")[0]
        employees = (8, 25, 120, 480, 2500, 12000)[h % 6]
        return {
            "id": f"cmp_{h:x}",
            "name": stem.rstrip("0123456789").replace("-", " ").title() or stem,
            "domain": domain,
            "category": {"industry": INDUSTRIES[(h >> 4) % len(INDUSTRIES)]},
            "metrics": {"employees": employees, "annualRevenue": employees * 180_000},
            "geo": {"countryCode": COUNTRIES[(h >> 8) % len(COUNTRIES)]},
        }

    def handle(self, method, path, headers, body):
        url = urlparse(path)
        if url.path != "/v2/companies/find" or method != "GET":
            return 404, {"error": {"type": "not_found", "message": "no such endpoint"}}, {}
        if not self.authorized(headers):
            return 401, {"error": {"type": "auth_required", "message": "bad API key"}}, {}
        domain = (parse_qs(url.query).get("domain") or [""])[0].strip().lower()
        if not domain or "." not in domain:
            return 422, {"error": {"type": "invalid_domain", "message": "domain required"}}, {}
        with self.lock:
            self.lookups[domain] = self.lookups.get(domain, 0) + 1
            first = self.lookups[domain] == 1
        if first and (_digest(domain) >> 20) % 1000 / 1000 < self.queued_share:
            return 202, {"status": "queued"}, {}
        company = self.company(domain)
        if company is None:
            return 404, {"error": {"type": "unknown_record", "message": "unknown domain"}}, {}
        return 200, company, {}
