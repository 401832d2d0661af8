"""Equal-Info Windows at CPU scale: M1, text compressed by each method, M2 per method."""
