"""The one retry wait: bounded by its cap however many failures came before."""

from __future__ import annotations

from serverless_sessions.backoff import CONFLICT_BACKOFF, Backoff


def test_delay_stays_within_cap_after_thousands_of_failures() -> None:
    # mutate_retries may be up to 10,000: the wait after the 2,000th conflict must still be
    # a number of seconds within the cap, not an OverflowError from 2**2000 as a float.
    for failures in (0, 1, 10, 1023, 1024, 2_000, 10_000):
        assert 0.0 <= CONFLICT_BACKOFF.delay(failures) <= CONFLICT_BACKOFF.cap


def test_delay_grows_from_base_until_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=3.0)
    assert all(0.0 <= backoff.delay(n) <= min(3.0, 0.5 * 2**n) for n in range(8))
