"""The maturity report: the Tech and Process indicators of an MLOps adoption guide that the
registry can show for one workspace, each with a verdict and its evidence, and an overall stage
(docs/maturity.md)."""
