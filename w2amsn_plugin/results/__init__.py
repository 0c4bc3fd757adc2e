"""Results of test runs: per-slice/per-volume scores (:mod:`.volume_scores`), Table III CSV and
Markdown (:mod:`.tables`), figures (:mod:`.figures`) and the one safe file writer (:mod:`.files`)."""
