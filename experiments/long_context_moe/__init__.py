"""Gemini 1.5 at CPU scale: sparse MoE vs dense, needle in a haystack, NLL vs position."""
