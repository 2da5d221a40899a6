"""BG/NBD and Gamma-Gamma (cdp/intelligence/purchase_model.py) recover the parameters of data
drawn from them, and their predictions match what the drawn customers then do."""

import numpy as np
from sklearn.metrics import roc_auc_score

from cdp.intelligence.purchase_model import BetaGeometricNBD, GammaGamma


def _customers(n: int, seed: int, horizon: float = 0.0):
    """BG/NBD customers (r=0.8, alpha=60, a=0.9, b=3): repeat purchases in an age T, and
    whether they buy again within `horizon` days after it."""
    rng = np.random.default_rng(seed)
    rate, dropout = rng.gamma(0.8, 1 / 60.0, n), rng.beta(0.9, 3.0, n)
    age = rng.uniform(100, 700, n)
    frequency, recency, again = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for i in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / rate[i])
            if t > age[i]:
                again[i] = t <= age[i] + horizon
                break
            frequency[i], recency[i] = frequency[i] + 1, t
            alive = rng.random() >= dropout[i]
    return frequency, recency, age, again


def test_bg_nbd_recovers_its_parameters_and_predicts_who_buys_again():
    frequency, recency, age, again = _customers(5000, seed=1, horizon=180)
    model = BetaGeometricNBD.fit(frequency, recency, age)
    assert abs(model.r - 0.8) < 0.15 and abs(model.alpha - 60) < 15
    assert abs(model.a / (model.a + model.b) - 0.9 / 3.9) < 0.05  # mean dropout chance
    quiet = model.probability_no_purchase(180, frequency, recency, age)
    assert roc_auc_score(~again, quiet) > 0.75
    assert abs(quiet.mean() - (~again).mean()) < 0.03  # calibrated on average
    # the expected purchases of a year fall with time since the last purchase
    recent = model.expected_purchases(365, 3, 290, 300)
    lapsed = model.expected_purchases(365, 3, 30, 300)
    assert recent > 2 * lapsed > 0


def test_gamma_gamma_recovers_the_mean_spend_and_shrinks_towards_it():
    rng = np.random.default_rng(2)
    frequency = rng.integers(1, 8, 4000).astype(float)
    scale = rng.gamma(4.0, 1 / 15.0, 4000)  # q=4, gamma=15: mean spend p*gamma/(q-1) = 30
    monetary = np.array(
        [rng.gamma(6.0, 1 / s, int(x)).mean() for s, x in zip(scale, frequency, strict=True)]
    )
    model = GammaGamma.fit(frequency, monetary)
    assert abs(model.p * model.gamma / (model.q - 1) - 30) < 3
    once, often = model.expected_value([1, 20], [90, 90])
    assert 30 < once < often < 90  # one purchase says less about a customer than twenty
    assert model.expected_value([0], [0])[0] == model.p * model.gamma / (model.q - 1)
