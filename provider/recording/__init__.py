"""Recording of the market into the history store: 1-second snapshots, activity bars, the trade tape."""
