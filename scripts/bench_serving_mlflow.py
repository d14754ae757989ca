"""The MLflow half of bench_serving.py: the same recipe model wrapped as an MLflow pyfunc
(models from code, nothing pickled) and served by `mlflow models serve`, in a Python that has
mlflow, torch and transformers (never this project's environment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

WRAPPER = textwrap.dedent(
    """
    import base64
    import io
    import sys

    import mlflow
    from PIL import Image


    class RecipeModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            import importlib
            import importlib.machinery
            import importlib.util
            # The recipe folder as a package (its siblings import relatively), as the
            # appliance's load_module does; the appliance itself is not installed here.
            sys.path.insert(0, REPO)
            package = importlib.machinery.ModuleSpec("appliance_recipe", None, is_package=True)
            package.submodule_search_locations = [context.artifacts["recipe"]]
            sys.modules["appliance_recipe"] = importlib.util.module_from_spec(package)
            module = importlib.import_module("appliance_recipe.MODULE")
            from pathlib import Path
            model = Path(context.artifacts["model"])
            self.predictor = module.load(model, device="cpu", quantization="none")

        def predict(self, context, model_input, params=None):
            images = [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")
                      for b in model_input["image"]]
            return [text for text, *_ in self.predictor.predict(images)]


    mlflow.models.set_model(RecipeModel())
    """
)


def _save(python: str, model_dir: Path, recipe_dir: Path, module: str, out: Path) -> None:
    wrapper = out.parent / "wrapper.py"
    stem = Path(module).stem
    wrapper.write_text(WRAPPER.replace("REPO", repr(str(ROOT))).replace("MODULE", stem))
    save = (
        "import mlflow, sys; mlflow.pyfunc.save_model(sys.argv[1], python_model=sys.argv[2], "
        "artifacts={'model': sys.argv[3], 'recipe': sys.argv[4]})"
    )
    subprocess.run(
        [python, "-c", save, str(out), str(wrapper), str(model_dir), str(recipe_dir)], check=True
    )


def mlflow_throughput(
    python: str, model_dir: Path, recipe: str, requests: int, seconds: float
) -> dict[str, Any]:
    from bench_serving import free_port, load_from_another_process, wait_http

    from appliance.recipes.catalog import builtin_recipes
    from appliance.recipes.spec import read_recipe

    spec = builtin_recipes().get(recipe) or read_recipe(Path(recipe))
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "pyfunc"
        _save(python, model_dir.resolve(), spec.folder, spec.module, saved)
        port = free_port()
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"file://{tmp}/mlruns",
            # mlflow execs `uvicorn` by name: its own environment's, first on PATH
            "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        server = subprocess.Popen(
            [python, "-m", "mlflow", "models", "serve", "-m", str(saved), "--env-manager",
             "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", 180)
            url = f"http://127.0.0.1:{port}/invocations"
            return load_from_another_process(url, "mlflow", 32, requests, seconds)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


if __name__ == "__main__":
    sys.exit("run scripts/bench_serving.py --mlflow-python PYTHON instead")
