"""Decoders from a frozen encoder's conv-module latents back to audio, traversals, contribution score."""
