"""The causal structure of the demo data: what drives behaviour and outcomes, with the true effects
written beside the data (true_effects.json, true_behaviour.csv) so that models and attribution are
checked against the truth rather than against themselves.

Every person has a latent purchase intent (standard normal). Intent drives what a CDP can observe:
visits (and how recent they are), contact-page views, form submissions, email opens and clicks.
Lead outcomes follow an ordered logit on the lead's fit and its intent; purchases follow the
BG/NBD process (a Poisson rate while alive, a dropout chance after each purchase), with the rate
raised by intent and a newsletter subscription and the dropout raised by support tickets; each
buyer has a favourite category and brand and their own shoe and clothing size. Ad campaigns
win orders in proportion to their spend and a true return of their own. The CDP never
sees intent, only its traces."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# Log-odds of a lead getting further through the funnel (New, MQL, SAL, SQL, Opportunity,
# Customer) per unit of each driver: an ordered logit with logistic noise.
LEAD_EFFECTS = {
    "intent": 1.5,
    "decision_maker": 1.0,  # job title Geschäftsführer, Einkauf or IT-Leiter
    "company_100_plus": 0.8,  # the account has at least 100 employees
    "target_industry": 0.6,  # Software, Maschinenbau, Automotive, Logistik
    "event_source": 0.7,  # lead source Messe, Webinar or Empfehlung
    "outside_dach": -0.6,
}
# Where the latent lead value crosses into the next funnel stage.
STAGES = ("MQL", "SAL", "SQL", "Opportunity", "Customer")
LEAD_STAGE_CUTS = (0.6, 1.5, 2.2, 2.8, 3.3)
# A lead that stopped before Customer was disqualified (rather than left open) this often.
LEAD_DISQUALIFIED = 0.35
DECISION_MAKERS = ("Geschäftsführer", "Einkauf", "IT-Leiter")
TARGET_INDUSTRIES = ("Software", "Maschinenbau", "Automotive", "Logistik")
EVENT_SOURCES = ("Messe", "Webinar", "Empfehlung")

# Log-odds (or log-rate) change per unit of intent in what the CDP observes.
BEHAVIOUR_EFFECTS = {
    "contact_page_view": 1.2,  # a page view is the contact page (base 8%)
    "form_submission": 1.0,  # a visit ends in a form (base 30%)
    "email_open": 0.9,  # a sent email is opened (base 40%)
    "email_click": 0.9,  # an opened email is clicked (base 25%)
    "recent_visits": 1.0,  # log-rate of visits in the last 60 days (base 0.8)
}
BEHAVIOUR_BASES = {
    "contact_page_view": 0.08,
    "form_submission": 0.3,
    "email_open": 0.4,
    "email_click": 0.25,
    "recent_visits": 0.8,
}

# BG/NBD: purchases per year while alive are Gamma(shape, rate scaled by the drivers); after each
# purchase the customer drops out with a Beta(a, b) chance, raised by support tickets.
PURCHASES = {
    "rate_shape": 0.8,  # customers differ widely in how often they buy (fits find r < 1)
    "rate_mean_per_year": 3.0,  # the mean over customers, before intent and newsletter
    "rate_intent": 0.45,  # log-rate per unit of intent
    "rate_newsletter": 0.25,  # log-rate for a newsletter subscriber
    "never_buys_logit": -1.0,  # an account that never orders, minus intent
    "dropout_a": 2.0,
    "dropout_b": 9.0,
    "dropout_support_tickets": 0.12,  # added to the dropout chance with support tickets
    "favourite_category_share": 0.6,  # lines from the buyer's favourite category
    "favourite_brand_share": 0.6,  # of those, lines of the buyer's favourite brand
    "own_size_share": 0.85,  # lines in the buyer's own size (else a neighbouring one)
    "max_purchases": 40,
}


# Each ad campaign's true return: orders it wins per EUR spent, relative to the others (visits
# follow spend; orders follow spend times this), so ROAS should rank the campaigns this way.
CAMPAIGN_RETURNS = {
    "brand_search": 3.0,
    "generic_search": 1.0,
    "winter_sale": 1.3,
    "newsletter_weekly": 5.0,
    "influencer_q3": 0.3,
    "b2b_leads": 0.15,
    "price_comparison": 1.8,
}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def shifted(base: float, effect: str, intent: float) -> float:
    """The chance of a behaviour for this intent: its base chance moved on the log-odds scale."""
    return sigmoid(logit(base) + BEHAVIOUR_EFFECTS[effect] * intent)


@dataclass
class Latent:
    """What drives one person, unseen by the CDP."""

    intent: float
    purchase_rate: float  # purchases per year while alive
    dropout: float  # chance of leaving after a purchase (before support tickets)
    buys: bool  # a shop account that orders at all
    favourite_category: int  # positions in the generator's lists
    favourite_brand: int
    shoe_size: int
    clothing_size: int

    @classmethod
    def draw(cls, seed: int, person_id: str, categories, brands, shoe_sizes, clothing_sizes):
        # a generator of its own: the other draws of the export do not move with it
        rng = random.Random(f"{seed}:{person_id}:latent")
        intent = rng.gauss(0.0, 1.0)
        shape = PURCHASES["rate_shape"]
        heterogeneity = rng.gammavariate(shape, 1.0 / shape)  # mean 1
        rate = PURCHASES["rate_mean_per_year"] * heterogeneity
        rate *= math.exp(PURCHASES["rate_intent"] * intent)
        return cls(
            intent=intent,
            purchase_rate=rate,
            dropout=rng.betavariate(PURCHASES["dropout_a"], PURCHASES["dropout_b"]),
            buys=rng.random() >= sigmoid(PURCHASES["never_buys_logit"] - intent),
            favourite_category=rng.randrange(len(categories)),
            favourite_brand=rng.randrange(len(brands)),
            # sizes bunch in the middle
            shoe_size=round(rng.triangular(0, len(shoe_sizes) - 1)),
            clothing_size=round(rng.triangular(0, len(clothing_sizes) - 1)),
        )


def lead_value(
    intent: float, job_title: str | None, employees: int | None, industry: str | None,
    lead_source: str, country: str,
) -> float:  # fmt: skip
    """The linear predictor of the ordered logit (without noise)."""
    drivers = {
        "intent": intent,
        "decision_maker": job_title in DECISION_MAKERS,
        "company_100_plus": (employees or 0) >= 100,
        "target_industry": industry in TARGET_INDUSTRIES,
        "event_source": lead_source in EVENT_SOURCES,
        "outside_dach": country not in ("DE", "AT", "CH"),
    }
    return sum(LEAD_EFFECTS[name] * float(value) for name, value in drivers.items())


def stage_reached(value: float, rng: random.Random) -> int:
    """How far through the funnel the lead got: 0 (New) to 5 (Customer)."""
    u = min(max(rng.random(), 1e-12), 1 - 1e-12)
    latent = value + math.log(u / (1 - u))  # logistic noise
    return sum(latent >= cut for cut in LEAD_STAGE_CUTS)


def chance_of_stage(value: float, stage: int) -> float:
    """The true chance that a lead with this linear predictor reaches `stage` (1: MQL ...)."""
    return sigmoid(value - LEAD_STAGE_CUTS[stage - 1])


def true_effects(seed: int) -> dict:
    return {
        "description": __doc__,
        "seed": seed,
        "lead_funnel_ordered_logit": {
            "effects": LEAD_EFFECTS,
            "stage_cuts": dict(zip(STAGES, LEAD_STAGE_CUTS, strict=True)),
            "disqualified_share": LEAD_DISQUALIFIED,
        },
        "behaviour_per_unit_intent": {
            name: {"base": BEHAVIOUR_BASES[name], "log_odds_or_log_rate": effect}
            for name, effect in BEHAVIOUR_EFFECTS.items()
        },
        "purchases_bg_nbd": PURCHASES,
        "campaign_relative_return_per_eur": CAMPAIGN_RETURNS,
    }
