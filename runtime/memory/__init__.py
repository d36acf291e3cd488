"""Memory planning from real shapes: live ranges, the NumPy byte arena, and the plan verifier."""
