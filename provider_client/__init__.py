"""What both gateways need to talk to the provider: the channel and its health."""
