"""The synthetic market over simulated time: a deep, uncrossed book that a seed reproduces exactly."""

from __future__ import annotations

from exchange_sim.market.synthetic import SyntheticMarket
from exchange_sim.matching import MatchingEngine, OrderResult
from exchange_sim.symbols import symbol_setup

SYMBOLS = ("BTCUSDT", "ETHUSDT", "DOGEUSDT")


def _run(seed: int, minutes: int, every_s: int = 10) -> tuple[MatchingEngine, list[tuple[str, int, int, bool]]]:
    """Run `minutes` of market in 100 ms steps; every `every_s` seconds note each symbol's level
    counts and whether its book is crossed."""
    setups = [symbol_setup(s) for s in SYMBOLS]
    engine = MatchingEngine([spec for spec, _ in setups])
    results: list[OrderResult] = []
    market = SyntheticMarket(engine, seed, results.append)
    for spec, profile in setups:
        market.add(spec, profile, 0)
    samples = []
    for step in range(1, minutes * 600 + 1):
        market.step(step * 100, 0.1)
        if step % (every_s * 10) == 0:
            for symbol in SYMBOLS:
                bids, asks = engine.level_counts(symbol)
                bid, ask = engine.book_ticker(symbol).bid_price, engine.book_ticker(symbol).ask_price
                crossed = bid is not None and ask is not None and bid >= ask
                samples.append((symbol, bids, asks, crossed))
    return engine, samples


def test_the_book_stays_deep_for_as_long_as_the_market_runs() -> None:
    # Adds cluster at the touch and the resting cap retires the oldest orders first; without the
    # deep refill every side thinned to about 20 levels within five minutes.
    _, samples = _run(seed=1, minutes=8)
    assert not any(crossed for *_, crossed in samples)
    late = samples[len(samples) // 2 :]
    thinnest = min(min(bids, asks) for _, bids, asks, _ in late)
    assert thinnest >= 100, f"a side thinned to {thinnest} levels"


def test_a_seed_reproduces_the_market_exactly() -> None:
    first, _ = _run(seed=7, minutes=1, every_s=60)
    second, _ = _run(seed=7, minutes=1, every_s=60)
    other, _ = _run(seed=8, minutes=1, every_s=60)
    for symbol in SYMBOLS:
        assert first.depth(symbol, 5000) == second.depth(symbol, 5000)
    assert any(first.depth(s, 5000) != other.depth(s, 5000) for s in SYMBOLS)
