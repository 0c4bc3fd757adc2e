"""The baselines benchmark (``w2amsn baselines``): the same budget for every network, the same
test set, one comparison table and plot. :mod:`.options` derives the options, :mod:`.logs`
reads BasicSR's logs, :mod:`.report` writes the results and :mod:`.runner` runs it all."""
