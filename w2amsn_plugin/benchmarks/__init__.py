"""All measurement: ``w2amsn bench`` (:mod:`.suite` runs it, :mod:`.targets` checks its targets;
machine limits, inference, training, data, whole-volume and bf16-accuracy rows each in its own
module) and the baselines benchmark ``w2amsn baselines`` (:mod:`.baselines`)."""
