"""Synthetic tasks with exact per-token ground truth (CFGs, iGSM), stored as HF datasets."""
