"""Gradient-correctness tools: finite-difference gradcheck and gradient flow through time."""
