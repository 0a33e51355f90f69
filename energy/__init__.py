"""Fuel and energy balances (Minenergo Order No. 1169)."""
