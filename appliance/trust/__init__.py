"""Trust: how far a model version's answers can be believed (calibration, distance from
training, warnings)."""
