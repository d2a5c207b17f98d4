"""Slices, subpopulations and data subjects: the same attacks measured on groups of records (step 6)."""
