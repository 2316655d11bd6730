"""The account: value types, the kept view of balances and open orders, and user data fan-out."""
