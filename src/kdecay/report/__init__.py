"""The report stage: runs -> ``results/summary.csv`` (``aggregate``) -> the regenerated
appendix tables (``tables``) and the figures (``figures``)."""
