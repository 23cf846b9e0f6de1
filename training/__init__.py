"""Models built and trained natively as TransformerLens HookedTransformers."""
