"""Backends other than torch that run a served model's forward passes (ONNX Runtime, OpenVINO):
which models and modes each supports (support.py), the model as graphs they run (graphs.py),
exported once per version into the home (export.py), and decoded as the torch runtime does
(greedy.py, runtime.py)."""
