"""kdecay: reproduction of "k-decay: A New Method For Learning Rate Schedule" (arXiv:2004.05909)."""

__version__ = "0.1.0"
