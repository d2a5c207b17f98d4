"""mia-audit: measure how much a trained classifier leaks about its training records.

Every number mia-audit reports comes from attacking the user's real model on the user's real records.
"""

__version__ = "0.1.0"
