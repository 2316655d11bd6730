"""Spot trading: pre-trade validation (pure), order value types, and the order manager shell."""
