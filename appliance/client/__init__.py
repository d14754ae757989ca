"""The Python client for notebooks and scripts, modelled on MLflow's tracking API, on this
machine's home or on a box over HTTP (the same classes either way):

import appliance
ws = appliance.connect().workspace("classified-ads")            # or connect("http://box:8765")
with ws.start_run(recipe="notebook", params={"lr": 3e-4}) as run:
    run.log_metric("loss", 0.42, step=1)
    run.register_model("out/model", "captioner")
"""

from appliance.client.connection import Client
from appliance.client.model import ModelVersion
from appliance.client.run import ActiveRun
from appliance.client.workspace import Workspace

__all__ = ["ActiveRun", "Client", "ModelVersion", "Workspace"]
