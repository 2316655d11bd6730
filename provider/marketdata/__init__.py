"""Market data: local books, tickers and trades kept from the exchange streams, and their fan-out."""
