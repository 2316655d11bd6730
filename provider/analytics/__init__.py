"""Pure numpy analytics over recorded history (no IO, no asyncio, no clocks).

Each module answers one Analytics RPC with a frozen result that carries, field for field, what
the proto response needs: :mod:`order_flow`, :mod:`volume_profile`, :mod:`anomalies`,
:mod:`health`, :mod:`liquidity`. :mod:`window` holds what every answer says about itself (covered
window, gaps, flags, thresholds). Inputs are :mod:`provider.history.arrays` plus scalars; every
formula and threshold is defined in its module's docstring.
"""
