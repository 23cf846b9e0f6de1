"""Attention against the true structure, generation evaluation, figures and reports."""
