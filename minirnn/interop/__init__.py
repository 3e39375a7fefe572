"""Interoperation with torch: twins of minirnn models, weights and optimiser state both ways.
torch is imported here (and in minirnn.parity.torch_ref) and nowhere else in the package."""
