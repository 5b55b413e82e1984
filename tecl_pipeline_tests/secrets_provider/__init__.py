"""Tests of the Secrets Manager credentials provider (A6, S1, S2, S4, S7, X6)."""
