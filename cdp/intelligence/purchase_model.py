"""Probabilistic purchase models on recency, frequency and monetary value: BG/NBD (Fader, Hardie
and Lee 2005, "Counting your customers the easy way") for how many purchases a customer makes
and whether they are still a customer, and Gamma-Gamma (Fader and Hardie 2013) for what a
purchase is worth. Our own implementation (the `lifetimes` package is unmaintained since 2020),
fitted by maximum likelihood with scipy and tested on data drawn from known parameters.

Per customer, in days: `frequency` x = repeat purchases (purchases after the first), `recency`
t_x = days from the first purchase to the last, `age` T = days from the first purchase to the
cutoff, `monetary` = average value of the repeat purchases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


@dataclass(frozen=True)
class BetaGeometricNBD:
    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(cls, frequency, recency, age) -> BetaGeometricNBD:
        x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))

        def negative_log_likelihood(log_params):
            r, alpha, a, b = np.exp(log_params)
            common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
            first = betaln(a, b + x) - betaln(a, b) + common - (r + x) * np.log(alpha + big_t)
            second = np.where(
                x > 0,
                betaln(a + 1, np.maximum(b + x - 1, 1e-12))
                - betaln(a, b)
                + common
                - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
            return -np.logaddexp(first, second).sum()

        start = np.log([1.0, max(float(big_t.mean()), 1.0), 1.0, 1.0])
        found = minimize(negative_log_likelihood, start, method="Nelder-Mead",
                         options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8})  # fmt: skip
        return cls(*np.exp(found.x))

    def _alive_odds(self, x, t_x, big_t):
        """delta(x>0) * a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x): the odds of having left."""
        return np.where(
            x > 0,
            self.a
            / np.maximum(self.b + x - 1, 1e-12)
            * ((self.alpha + big_t) / (self.alpha + t_x)) ** (self.r + x),
            0.0,
        )

    def probability_alive(self, frequency, recency, age) -> np.ndarray:
        x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        return 1.0 / (1.0 + self._alive_odds(x, t_x, big_t))

    def expected_purchases(self, days: float, frequency, recency, age) -> np.ndarray:
        """Expected purchases in the next `days` (conditional expectation, eq. 10)."""
        x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        ratio = (alpha + big_t) / (alpha + big_t + days)
        hyper = hyp2f1(r + x, b + x, a + b + x - 1, days / (alpha + big_t + days))
        numerator = (a + b + x - 1) / (a - 1) * (1 - ratio ** (r + x) * hyper)
        return numerator / (1.0 + self._alive_odds(x, t_x, big_t))

    def probability_no_purchase(self, days: float, frequency, recency, age) -> np.ndarray:
        """Chance of no purchase in the next `days`: gone, or alive and buying nothing (the
        purchase rate's posterior is Gamma(r + x, alpha + T))."""
        x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        alive = self.probability_alive(x, t_x, big_t)
        quiet = ((self.alpha + big_t) / (self.alpha + big_t + days)) ** (self.r + x)
        return 1.0 - alive * (1.0 - quiet)


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float

    @classmethod
    def fit(cls, frequency, monetary) -> GammaGamma:
        """On customers with repeat purchases (frequency > 0) and a positive average value."""
        x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
        keep = (x > 0) & (m > 0)
        x, m = x[keep], m[keep]

        def negative_log_likelihood(log_params):
            p, q, gamma = np.exp(log_params)
            return -(
                gammaln(p * x + q)
                - gammaln(p * x)
                - gammaln(q)
                + q * np.log(gamma)
                + p * x * np.log(x)
                + (p * x - 1) * np.log(m)
                - (p * x + q) * np.log(gamma + x * m)
            ).sum()

        start = np.log([1.0, 2.0, float(m.mean())])
        found = minimize(negative_log_likelihood, start, method="Nelder-Mead",
                         options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8})  # fmt: skip
        return cls(*np.exp(found.x))

    def expected_value(self, frequency, monetary) -> np.ndarray:
        """Expected value of a customer's next purchase: their average shrunk towards the
        population's (the population mean p*gamma/(q-1) for customers without repeats)."""
        x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
        population = self.p * self.gamma / (self.q - 1)
        individual = self.p * (self.gamma + x * m) / (self.p * x + self.q - 1)
        return np.where(x > 0, individual, population)
