"""Many pipeline stages at once: the smoke pipeline in a scratch DVC workspace (``smoke``) and
every stale training stage on Ray or SLURM (``stages``, ``engines``, ``slurm``,
``driver``: ``kdecay sweep``), plus the checks, plan and checkpoint clean-up around them."""
