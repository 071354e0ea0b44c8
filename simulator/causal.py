"""A portfolio whose payments answer to contacts, with the causal truth kept: the world in which what working the
list causes can be measured, because it is known.

`simulator.portfolio` writes a landlord's feeds as they come; its officers are part of the history. Here the
officers are the caller: `CausalWorld` moves a portfolio on a week at a time and the caller says, each week, which
tenancies were contacted (the service's worklist worked at some capacity, a holdout arm left alone, a random
policy...). Payments then depend on that choice, tenant by tenant, through effects the pipeline never sees:

* **persuadable** tenants pay more for a contact: a better chance of paying the week's rent for a few weeks
  (``tau``), a catch-up payment towards the arrears (``catchup_lift``) and sometimes an arrangement (a weekly
  top-up they mostly keep);
* **sure things** would pay anyway (a high natural catch-up), so a contact changes nothing;
* **lost causes** hardly pay whatever is done (an arrangement, rarely agreed, is soon broken);
* **sleeping dogs**, a small group, pay *less* for a few weeks after a contact (pressure makes things worse).

Which tenant is which depends on their archetype (reliable, habitual_late, irregular, shock_prone, chronic) and on
a hidden engagement (how much they try: part-payments and catching up show it in the ledger, and the engaged are
likelier to be persuadable), so it can be learnt only partly from what the ledger shows, as in life. Shocks (job
loss, a cut in hours) come and go and hide the difference between a lost cause and a tenant in a bad month.

**Potential outcomes.** Every random number the world will use is drawn when it is made, one per tenancy, week
and purpose. A world's future is therefore a function of the contacts alone: `fork` copies the state, and two
forks stepped with different contacts differ *only* by what the contacts caused. That is how the true effect of a
policy, of an experiment's arm or of one contact is known (`expected_gain` gives the expected pounds a contact
brings in now, from the same formulas the steps use).

**What the service sees** (`observe`): per live tenancy, features named and meant as in `features.catalogue`
(balance, arrears in weeks of rent, payments, paid-to-charged shares, missed periods, days since the last payment
and contact, arrangement, dispute, Breathing Space, rent) and a readiness state judged as the policy does in
kind: ``blocked`` (Breathing Space), ``disputed``, ``hold`` (a vulnerable tenant, or a benefit claim pending),
``review`` (a payment of two weeks' rent or more last week), ``ready`` (at least a week's rent owed), ``none``.
A housing team's contacts are discretionary outreach only; nothing here is a protocol step.

Before the first week the world runs ``burn_in_weeks`` with nobody contacted, so arrears and habits are in motion
and the history a first model trains on holds no intervention (the pre-service record).

    world = CausalWorld(WorldSpec(tenancies=4000), seed=3)
    seen = world.observe()                       # features + readiness_state, as of the current week
    world.step(seen.tenancy_id[:100])            # one week with these tenancies contacted
    alt = world.fork(); alt.step([])             # the same week, nobody contacted
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

ARCHETYPES = ("reliable", "habitual_late", "irregular", "shock_prone", "chronic")
KINDS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
STATES = ("blocked", "disputed", "hold", "review", "ready", "none")

#: Share of each archetype in the portfolio.
_ARCHETYPE_SHARE = np.array([0.45, 0.20, 0.15, 0.12, 0.08])
#: Chance of paying the week's rent in full (outside a shock).
_P_PAY = np.array([0.97, 0.86, 0.74, 0.93, 0.58])
#: Chance, in a week in arrears, of paying something towards them unprompted.
_P_CATCHUP = np.array([0.16, 0.07, 0.06, 0.10, 0.02])
#: Chance of falling into a shock in a given week (a shock lasts about eight weeks).
_SHOCK_HAZARD = np.array([0.002, 0.004, 0.006, 0.02, 0.008])
#: P(kind | archetype): rows follow ARCHETYPES, columns KINDS.
KIND_GIVEN_ARCHETYPE = np.array([
    [0.22, 0.63, 0.10, 0.05],
    [0.55, 0.20, 0.20, 0.05],
    [0.45, 0.10, 0.38, 0.07],
    [0.40, 0.35, 0.20, 0.05],
    [0.20, 0.00, 0.72, 0.08],
])

_UNIFORMS = ("shock_in", "shock_out", "breathing", "dispute", "claim", "pay", "partial", "catchup", "agree", "keep")
_NEVER = -10_000


@dataclass(frozen=True)
class WorldSpec:
    """The size of a world and the reach of a contact; the behaviour's constants are in the module."""

    tenancies: int = 4000
    patches: int = 8
    burn_in_weeks: int = 30
    #: Weeks after the burn-in the world can run (its random numbers are drawn for these).
    weeks: int = 60
    #: How many weeks a contact's effect on the weekly payment lasts.
    contact_weeks: int = 4
    #: How many weeks of history `observe` can look back.
    history_weeks: int = 26
    #: Multiplies every effect of a contact (the lifts and the chance of an arrangement): 1 is the module's world;
    #: larger values ask what changes when contacts matter more (`arrears.impact.retrain_study`).
    effect_scale: float = 1.0


class CausalWorld:
    """A portfolio moving week by week, its payments depending on who was contacted. See the module docstring."""

    def __init__(self, spec: WorldSpec | None = None, seed: int = 0) -> None:
        spec = spec if spec is not None else WorldSpec()
        self.spec = spec
        self.seed = seed
        n = spec.tenancies
        rng = np.random.default_rng(seed)
        total = spec.burn_in_weeks + spec.weeks
        self.tenancy_id = np.array([f"W{seed:03d}-{i:06d}" for i in range(n)], dtype=object)
        self.patch = np.array([f"Patch-{k + 1}" for k in rng.integers(0, spec.patches, n)], dtype=object)
        self.archetype = rng.choice(len(ARCHETYPES), size=n, p=_ARCHETYPE_SHARE)
        # Engagement: how much a tenant tries (part-payments, catching up). It shows in the ledger and makes a
        # contact more likely to work, so persuadability can be learnt in part, never read off.
        self.engagement = rng.beta(2.0, 2.0, n)
        e = self.engagement
        weights = KIND_GIVEN_ARCHETYPE[self.archetype] * np.column_stack(
            [0.3 + 1.4 * e, np.ones(n), 1.7 - 1.4 * e, np.ones(n)])
        cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        self.kind = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), len(KINDS) - 1)
        self.rent = np.round(rng.uniform(80.0, 250.0, n), 2)
        a = self.archetype
        self.p_pay = np.clip(_P_PAY[a] + rng.normal(0, 0.03, n), 0.3, 0.995)
        self.p_partial = np.clip(rng.uniform(0.2, 0.7, n) * (1 - self.p_pay) * 2 * (0.5 + e), 0, 0.8)
        self.partial_share = rng.uniform(0.3, 0.8, n)
        self.p_catchup = _P_CATCHUP[a] * rng.uniform(0.6, 1.4, n) * (0.6 + 0.8 * e)
        self.catchup_share = rng.uniform(0.25, 0.9, n)
        self.shock_hazard = _SHOCK_HAZARD[a]
        self.vulnerable = rng.random(n) < 0.04
        kind = self.kind
        persuadable, sure, lost, dog = (kind == k for k in range(4))
        self.tau = np.where(persuadable, rng.uniform(0.08, 0.35, n), 0.0) + np.where(dog, -rng.uniform(0.1, 0.3, n), 0)
        self.catchup_lift = np.where(persuadable, rng.uniform(0.25, 0.65, n), 0.0)
        self.p_catchup = np.where(sure, np.maximum(self.p_catchup * 2.5, 0.25), self.p_catchup)
        self.p_catchup = np.where(lost, self.p_catchup * 0.5, self.p_catchup)
        self.p_agree = np.where(persuadable, 0.35, np.where(lost, 0.08, 0.0))
        self.tau, self.catchup_lift = self.tau * spec.effect_scale, self.catchup_lift * spec.effect_scale
        self.p_agree = np.minimum(self.p_agree * spec.effect_scale, 0.95)
        self.p_keep = np.where(persuadable, rng.uniform(0.8, 0.97, n), np.where(lost, 0.4, 0.9))
        # One uniform per purpose, week and tenancy: the future is a function of the contacts alone.
        self._u = {name: rng.random((total, n), dtype=np.float32) for name in _UNIFORMS}
        self._begin(rng, total)
        for _ in range(spec.burn_in_weeks):
            self._step(np.zeros(n, dtype=bool))

    def _begin(self, rng: np.random.Generator, total: int) -> None:
        """The state at week 0: opening arrears (chronic and irregular payers start some weeks behind), no shock,
        no circumstance, no arrangement, no contact, and the history's matrices."""
        n, a = self.spec.tenancies, self.archetype
        self.t = 0  # weeks since the world began (the burn-in included)
        self.balance = np.where(a == 4, self.rent * rng.uniform(0, 6, n), 0.0) + np.where(
            a == 2, self.rent * rng.uniform(0, 2, n), 0.0)
        self.in_shock = np.zeros(n, dtype=bool)
        self.breathing_until = np.full(n, _NEVER)
        self.dispute_until = np.full(n, _NEVER)
        self.claim_until = np.full(n, _NEVER)
        self.arrangement = np.zeros(n, dtype=bool)
        self.topup = np.zeros(n)
        self.last_contact = np.full(n, _NEVER)
        self.last_payment = np.zeros(n, dtype=int)
        self.last_clear = np.where(self.balance <= 0, 0, _NEVER)
        self.arrangements_agreed = np.zeros(n, dtype=int)
        self.paid = np.zeros((total, n))
        self.charged = np.zeros((total, n))
        self.balances = np.zeros((total + 1, n))
        self.balances[0] = self.balance
        self.contacted = np.zeros((total, n), dtype=bool)
        self._index = pd.Index(self.tenancy_id)

    # -- what the caller can ask -------------------------------------------------------------------------------

    @property
    def week(self) -> int:
        """Weeks since the burn-in ended (0 before the first `step`)."""
        return self.t - self.spec.burn_in_weeks

    def fork(self) -> CausalWorld:
        """A copy that shares the random numbers: stepped differently, it differs only by the contacts' effects."""
        twin = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(twin, name, value.copy())
        twin._u = self._u  # never written: shared
        return twin

    def rows(self, tenancy_ids: Iterable[str]) -> np.ndarray:
        ids = pd.Index(list(tenancy_ids), dtype=object)
        where = self._index.get_indexer(ids)
        if (where < 0).any():
            raise KeyError(f"Not in this world: {list(ids[where < 0][:3])}")
        return where

    def step(self, contacted: Iterable[str] = ()) -> None:
        """One week: these tenancies are contacted at its start, then rent is charged and tenants pay (or not)."""
        if self.week >= self.spec.weeks:
            raise RuntimeError(f"This world was drawn for {self.spec.weeks} weeks: make it with WorldSpec(weeks=...)")
        mask = np.zeros(self.spec.tenancies, dtype=bool)
        mask[self.rows(contacted)] = True
        self._step(mask)

    def observe(self) -> pd.DataFrame:
        """Features and readiness as of now (the end of the last week stepped), one row per tenancy."""
        t = self.t
        h = min(t, self.spec.history_weeks)
        rent = self.rent
        paid, charged, bal = self.paid[t - h:t], self.charged[t - h:t], self.balances[:t + 1]

        def window(matrix: np.ndarray, weeks: int) -> np.ndarray:
            return matrix[max(t - weeks, 0):t].sum(axis=0)

        def change(weeks: int) -> np.ndarray:
            return bal[t] - bal[max(t - weeks, 0)]

        last_week_paid = self.paid[t - 1] if t else np.zeros_like(rent)
        arrears_weeks = np.maximum(self.balance, 0) / rent
        frame = pd.DataFrame({
            "tenancy_id": self.tenancy_id,
            "patch": self.patch,
            "week": self.week,
            "balance": self.balance,
            "arrears_weeks": arrears_weeks,
            "balance_change_4w": change(4),
            "balance_change_13w": change(13),
            "peak_arrears_weeks_26w": np.maximum(bal[max(t - 26, 0):t + 1].max(axis=0), 0) / rent,
            "weeks_since_clear": np.minimum(t - self.last_clear, 52).astype(float),
            "days_since_last_payment": np.minimum(7.0 * (t - self.last_payment), 365.0),
            "payments_4w": window(self.paid > 0, 4).astype(float),
            "payments_13w": window(self.paid > 0, 13).astype(float),
            "paid_to_charged_4w": window(self.paid, 4) / np.maximum(window(self.charged, 4), 1.0),
            "paid_to_charged_13w": window(self.paid, 13) / np.maximum(window(self.charged, 13), 1.0),
            "missed_periods_26w": (paid < 0.5 * np.maximum(charged, 1.0)).sum(axis=0).astype(float),
            "arrangement_active": self.arrangement.astype(float),
            "days_since_contact": np.minimum(7.0 * (t - self.last_contact), 365.0),
            "dispute_open": (self.dispute_until > t).astype(float),
            "breathing_space_active": (self.breathing_until > t).astype(float),
            "weekly_rent": rent,
        })
        frame["readiness_state"] = self._readiness(arrears_weeks, last_week_paid)
        return frame

    def truth(self) -> pd.DataFrame:
        """The hidden truth per tenancy (never a feature): archetype, kind, and the effect of a contact."""
        return pd.DataFrame({
            "tenancy_id": self.tenancy_id,
            "archetype": np.array(ARCHETYPES, dtype=object)[self.archetype],
            "kind": np.array(KINDS, dtype=object)[self.kind],
            "tau": self.tau,
            "catchup_lift": self.catchup_lift,
            "p_agree": self.p_agree,
        })

    def expected_gain(self) -> pd.Series:
        """The expected pounds a contact made now brings in over `contact_weeks` weeks, from the true effects.

        Its parts follow `_step`: the lift in the chance of paying the week's rent (shocks as they stand now), the
        catch-up it prompts (a share of the arrears), and an arrangement's top-ups kept over the weeks."""
        w = self.spec.contact_weeks
        owed = np.maximum(self.balance, 0.0)
        base = self._p_pay_now()
        lifted = np.clip(base + self.tau, 0.01, 0.99)
        rent_gain = (lifted - base) * self.rent * w
        catch_base = self._p_catchup_now()
        catch_gain = (np.clip(catch_base + self.catchup_lift, 0, 0.99) - catch_base) * self.catchup_share * owed
        arrangement = np.where(self.arrangement | (owed <= self.rent), 0.0, self.p_agree) * self._topup_for(owed) * (
            self.p_keep * (1 - self.p_keep ** w) / np.maximum(1 - self.p_keep, 1e-9))
        gain = np.where(self.breathing_until > self.t, 0.0, rent_gain + catch_gain + arrangement)
        return pd.Series(gain, index=self._index, name="expected_gain")

    def collected(self, tenancy_ids: Iterable[str] | None = None, weeks: int | None = None) -> np.ndarray:
        """Pounds each tenancy paid over the last `weeks` weeks stepped (all of them when None)."""
        start = self.spec.burn_in_weeks if weeks is None else self.t - weeks
        rows = slice(None) if tenancy_ids is None else self.rows(tenancy_ids)
        return self.paid[start:self.t][:, rows].sum(axis=0)

    def balance_at(self, week: int, tenancy_ids: Iterable[str] | None = None) -> np.ndarray:
        """Each tenancy's balance at the end of a week (`week` as in `observe`: 0 = end of the burn-in)."""
        rows = slice(None) if tenancy_ids is None else self.rows(tenancy_ids)
        return self.balances[self.spec.burn_in_weeks + week][rows]

    # -- the week ------------------------------------------------------------------------------------------------

    def _p_pay_now(self) -> np.ndarray:
        return self.p_pay * np.where(self.in_shock, 0.45, 1.0)

    def _p_catchup_now(self) -> np.ndarray:
        return self.p_catchup * np.where(self.in_shock, 0.3, 1.0)

    def _topup_for(self, owed: np.ndarray) -> np.ndarray:
        return np.minimum(owed / 20.0, 0.25 * self.rent)

    def _readiness(self, arrears_weeks: np.ndarray, last_week_paid: np.ndarray) -> np.ndarray:
        t = self.t
        state = np.full(self.spec.tenancies, "none", dtype=object)
        state[arrears_weeks >= 1.0] = "ready"
        state[(last_week_paid >= 2 * self.rent) & (arrears_weeks > 0)] = "review"
        state[self.vulnerable | (self.claim_until > t)] = "hold"
        state[self.dispute_until > t] = "disputed"
        state[self.breathing_until > t] = "blocked"
        return state

    def _step(self, contacted: np.ndarray) -> None:
        t, u = self.t, {k: v[self.t] for k, v in self._u.items()}
        owed_before = self.balance > 0
        # Circumstances.
        self.in_shock = np.where(self.in_shock, u["shock_out"] >= 0.12, u["shock_in"] < self.shock_hazard)
        start_bs = owed_before & (self.breathing_until <= t) & (u["breathing"] < 0.004)
        self.breathing_until = np.where(start_bs, t + 8, self.breathing_until)
        self.dispute_until = np.where((self.dispute_until <= t) & (u["dispute"] < 0.004), t + 3, self.dispute_until)
        self.claim_until = np.where((self.claim_until <= t) & (u["claim"] < 0.003), t + 5, self.claim_until)
        # A contact in Breathing Space is not made (the caller should never ask; if it does, it is not made).
        contacted = contacted & (self.breathing_until <= t)
        self.contacted[t] = contacted
        self.last_contact = np.where(contacted, t, self.last_contact)
        effect_on = (t - self.last_contact) < self.spec.contact_weeks
        # Rent.
        self.balance = self.balance + self.rent
        self.charged[t] = self.rent
        # The week's rent.
        p = np.where(effect_on, np.clip(self._p_pay_now() + self.tau, 0.01, 0.99), self._p_pay_now())
        pays = u["pay"] < p
        partial = ~pays & (u["partial"] < self.p_partial)
        regular = np.where(pays, self.rent, np.where(partial, self.rent * self.partial_share, 0.0))
        # Catch-up towards arrears (prompted by a contact this week for the persuadable).
        owed = np.maximum(self.balance - regular, 0.0)
        q = self._p_catchup_now() + np.where(contacted, self.catchup_lift, 0.0)
        catchup = np.where((owed > 0) & (u["catchup"] < np.clip(q, 0, 0.99)), self.catchup_share * owed, 0.0)
        # Arrangements: agreed at a contact when a week's rent or more is owed; a top-up a week, kept or broken.
        agree = contacted & ~self.arrangement & (owed > self.rent) & (u["agree"] < self.p_agree)
        self.topup = np.where(agree, self._topup_for(owed), self.topup)
        self.arrangements_agreed += agree
        self.arrangement |= agree
        kept = self.arrangement & (u["keep"] < self.p_keep)
        topup = np.where(kept, np.minimum(self.topup, np.maximum(owed - catchup, 0.0)), 0.0)
        self.arrangement &= kept
        paid = regular + catchup + topup
        self.balance = self.balance - paid
        self.arrangement &= self.balance > 0
        self.paid[t] = paid
        self.last_payment = np.where(paid > 0, t + 1, self.last_payment)
        self.last_clear = np.where(self.balance <= 0, t + 1, self.last_clear)
        self.t = t + 1
        self.balances[self.t] = self.balance


def growth_labels(world: CausalWorld, week: int, horizon_weeks: int = 8, growth_weeks: float = 1.0,
                  threshold_weeks: float = 4.0) -> pd.Series:
    """The arrears-risk label of `training.labels` in this world: within `horizon_weeks` after `week`, the balance
    rises by a week's rent or more, or arrears reach `threshold_weeks` weeks of rent from below. Needs the world
    stepped to `week + horizon_weeks`."""
    start = world.spec.burn_in_weeks + week
    if world.t < start + horizon_weeks:
        raise ValueError(f"Week {week}'s label needs the world stepped to week {week + horizon_weeks}")
    now = world.balances[start]
    future = world.balances[start + 1:start + horizon_weeks + 1].max(axis=0)
    rent = world.rent
    crosses = (now / rent < threshold_weeks) & (future / rent >= threshold_weeks)
    label = (future - now >= growth_weeks * rent) | crosses
    return pd.Series(label.astype(int), index=world._index, name="label")
