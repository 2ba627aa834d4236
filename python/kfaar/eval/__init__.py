"""Evaluation of face anonymizers against independent judges (``kfaar eval``).

See docs/EVALUATION.md for how to run it and what each property means.
"""
