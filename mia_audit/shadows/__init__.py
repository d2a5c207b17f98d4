"""Workflow step 5: shadow and reference models (training, keep-mask, cache) for the shadow attacks.

Heavy modules (torch, onnx, scikit-learn) are imported where they are used, not here, so importing the
attack registry stays cheap.
"""
