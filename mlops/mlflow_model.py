"""The run's model as an MLflow model (the ``keras``, ``sklearn`` or ``pytorch`` flavour, with
``python_function``).

The MLflow model folder is written from the model file and its card, never by loading the model here:
loading a pickle runs code, and this process holds the mail and webhook secrets. The file is the very one
in ``runs/<run>/model/`` (a scikit-learn model is a cloudpickle stream, MLflow's ``cloudpickle``
serialization; a Keras model a ``.keras`` file, MLflow's Keras 3 layout), and the card gives the versions
for ``requirements.txt``; a PyTorch model is MLflow's ``pytorch`` layout of the same file: ``data/model.pt2``
for torch.export's program, ``data/model.pth`` for TorchScript, which ``mlflow.pytorch.load_model`` reads
with ``torch.load``, which hands a TorchScript archive to ``torch.jit.load``). The model is logged as a LoggedModel of the run (``models:/<id>``) and as the
run's ``model`` artifact folder (``runs:/<run>/model``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlops.ledger import RunRecord
from mlops.model_store import model_file, read_card
from mlops_harness.protocol import MODEL_DIR, ModelFormat

ARTIFACT_PATH = MODEL_DIR  # the run's model/ folder, under its own name in MLflow
PIP_NAMES = {
    "keras": "keras",
    "tensorflow": "tensorflow",
    "scikit-learn": "scikit-learn",
    "numpy": "numpy",
    "torch": "torch",
}
TORCH_FORMATS = (ModelFormat.TORCH_EXPORT, ModelFormat.TORCHSCRIPT)
FLAVOURS = {
    ModelFormat.KERAS: "keras",
    ModelFormat.PICKLE: "sklearn",
    ModelFormat.TORCH_EXPORT: "pytorch",
    ModelFormat.TORCHSCRIPT: "pytorch",
}
TORCH_PICKLE_MODULE = "mlflow.pytorch.pickle_module"  # what mlflow.pytorch names in pickle_module_info.txt


def _requirements(card: dict[str, Any]) -> list[str]:
    versions = card.get("versions") or {}
    pins = [f"{pip}=={versions[name]}" for name, pip in PIP_NAMES.items() if versions.get(name)]
    return [*pins, "cloudpickle"] if card.get("format") == ModelFormat.PICKLE else pins


def write_mlflow_model(card: dict[str, Any], path: Path, folder: Path) -> Any:
    """Write the MLflow model folder for the model file ``path`` described by ``card``; the ``Model``."""
    from mlflow import pyfunc
    from mlflow.models import Model

    add_to_model: Any = pyfunc.add_to_model  # untyped
    versions = card.get("versions") or {}
    model = Model(artifact_path=ARTIFACT_PATH)
    folder.mkdir(parents=True)
    if card.get("format") == ModelFormat.KERAS:
        (folder / "data").mkdir()
        shutil.copy2(path, folder / "data" / "model.keras")
        (folder / "data" / "keras_module.txt").write_text("keras", encoding="utf-8")
        model.add_flavor(
            "keras",
            data="data",
            keras_version=versions.get("keras"),
            keras_backend=versions.get("keras_backend", "tensorflow"),
            save_exported_model=False,
        )
        add_to_model(model, loader_module="mlflow.keras")
    elif card.get("format") == ModelFormat.PICKLE:
        shutil.copy2(path, folder / "model.pkl")
        model.add_flavor(
            "sklearn",
            pickled_model="model.pkl",
            sklearn_version=versions.get("scikit-learn"),
            serialization_format="cloudpickle",
            code=None,
        )
        add_to_model(model, loader_module="mlflow.sklearn", model_path="model.pkl", predict_fn="predict")
    elif card.get("format") in TORCH_FORMATS:
        _pytorch(card, path, folder, model)
    else:
        raise ValueError(f"MLflow has no flavour for a model in the {card.get('format')} format")
    (folder / "requirements.txt").write_text("\n".join(_requirements(card)) + "\n", encoding="utf-8")
    return model


def _pytorch(card: dict[str, Any], path: Path, folder: Path, model: Any) -> None:
    """MLflow's ``pytorch`` layout: ``data/model.pt2`` (no ``python_function``, as mlflow.pytorch does for
    an exported program on tensors), or ``data/model.pth`` with its pickle module's name (TorchScript)."""
    from mlflow import pyfunc

    (folder / "data").mkdir()
    version = (card.get("versions") or {}).get("torch")
    if card.get("format") == ModelFormat.TORCH_EXPORT:
        shutil.copy2(path, folder / "data" / "model.pt2")
        model.add_flavor("pytorch", model_data="data", pytorch_version=version, code=None)
        return
    shutil.copy2(path, folder / "data" / "model.pth")
    (folder / "data" / "pickle_module_info.txt").write_text(TORCH_PICKLE_MODULE, encoding="utf-8")
    model.add_flavor("pytorch", model_data="data", pytorch_version=version, code=None)
    add_to_model: Any = pyfunc.add_to_model  # untyped
    add_to_model(model, loader_module="mlflow.pytorch", data="data", pickle_module_name=TORCH_PICKLE_MODULE)


def log_model(client: Any, experiment_id: str, mlflow_run_id: str, run: RunRecord) -> str | None:
    """Log the run's model, if it has one, to the MLflow run ``mlflow_run_id``; the LoggedModel's id."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    card, path = read_card(run), model_file(run)
    if card is None or path is None or card.get("format") not in FLAVOURS:
        return None
    flavour = FLAVOURS[ModelFormat(card["format"])]
    logged = client.create_logged_model(
        experiment_id,
        name=ARTIFACT_PATH,
        source_run_id=mlflow_run_id,
        tags={"mlops.run": run.id, "mlops.sha256": str(card.get("sha256"))},
        model_type=flavour,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ARTIFACT_PATH
        model = write_mlflow_model(card, path, folder)
        model.run_id, model.model_id = mlflow_run_id, logged.model_id
        model.save(str(folder / "MLmodel"))
        client.log_model_artifacts(logged.model_id, str(folder))
        client.log_artifacts(mlflow_run_id, str(folder), ARTIFACT_PATH)
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(mlflow_run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return str(logged.model_id)
