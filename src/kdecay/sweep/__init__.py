"""Many pipeline stages at once: the smoke pipeline in a scratch DVC workspace (``smoke``) and
the stale training stages of ``dvc repro`` several at a time (``parallel``)."""
