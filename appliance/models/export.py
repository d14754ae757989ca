"""Export a model version for the world beyond one machine: an MLflow pyfunc model folder
(models from code: a small wrapper file, the version's folder and its recipe's code as artifacts,
nothing pickled). `mlflow.pyfunc.load_model(OUT)` loads it and predicts with the recipe's own
`load()`; `mlflow models serve -m OUT` serves it; `mlflow.register_model` puts it in an MLflow
registry. Writing the folder needs MLflow (`pip install mlflow-skinny pandas`) here; the
appliance itself never depends on it."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.errors import Conflict, InvalidInput
from appliance.models.lineage import recipe_of
from appliance.services import Services

FORMATS = ("mlflow",)

# The pyfunc wrapper written beside the model. The input is a list of images (bytes or base64
# text), a dict or DataFrame with an "image" column; the output is one dict per image.
WRAPPER = textwrap.dedent(
    '''
    """appliance export: an appliance model version as an MLflow pyfunc model."""
    import base64
    import io
    from pathlib import Path

    import mlflow
    from PIL import Image


    class ApplianceModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            from appliance.recipes.catalog import load_module
            from appliance.recipes.spec import read_recipe

            # The recipe folder imports as a package of its own, as in the appliance.
            module = load_module(read_recipe(Path(context.artifacts["recipe"])))
            self.predictor = module.load(
                Path(context.artifacts["model"]), device="cpu", quantization="none"
            )

        def predict(self, context, model_input, params=None):
            items = model_input
            if hasattr(items, "columns") or isinstance(items, dict):
                items = list(items["image"])
            images = [_image(item) for item in items]
            return [
                {"description": text, "confidence": float(confidence)}
                for text, confidence, *_ in self.predictor.predict(images)
            ]


    def _image(item):
        data = item if isinstance(item, bytes) else base64.b64decode(item)
        return Image.open(io.BytesIO(data)).convert("RGB")


    mlflow.models.set_model(ApplianceModel())
    '''
)


def export_model(
    services: Services, workspace: str, ref: str, out: Path, fmt: str = "mlflow"
) -> dict[str, Any]:
    """Write version `ref` to the new folder `out` in format `fmt`; returns what was written."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format '{fmt}' (formats: {', '.join(FORMATS)})")
    if out.exists() and any(out.iterdir()):
        raise Conflict(f"{out} exists and is not empty; export into a new folder")
    version = services.models.get(workspace, ref)
    spec = recipe_of(services, workspace, version, None)
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise InvalidInput(
            f"exporting to MLflow needs MLflow in this environment ({exc}): "
            "pip install mlflow-skinny pandas"
        ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()  # empty: save_model wants to create it
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "appliance_model.py"
        wrapper.write_text(WRAPPER)
        mlflow.pyfunc.save_model(
            str(out),
            python_model=str(wrapper),
            artifacts={
                "model": str(services.models.folder(version)),
                "recipe": str(spec.folder),
            },
            pip_requirements=[f"appliance=={__version__}"],
            metadata={
                "appliance_model": version["name"],
                "appliance_version": version["version"],
                "appliance_recipe": spec.name,
                "metrics": version["metrics"],
            },
        )
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    return {
        "format": fmt,
        "path": str(out),
        "model": version["name"],
        "version": version["version"],
        "recipe": spec.name,
    }
