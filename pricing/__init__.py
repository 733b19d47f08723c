"""Job units as go-livepeer counts them, and the cost model behind a recommended price."""
