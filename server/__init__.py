"""HTTP API and the agents' page."""
