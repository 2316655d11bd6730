"""What every process of the system shares: configuration parsing, logging, and the run loop."""
