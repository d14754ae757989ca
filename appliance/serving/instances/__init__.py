"""Model instances (Triton's instance groups): a deployment served by N loaded copies of its
model, on threads of the server (instance.py's ModelInstance) or in spawned worker processes fed
through shared memory (process.py), each with its own batcher, requests spread over them by a
group (group.py). build.py chooses them from the deploy options."""
