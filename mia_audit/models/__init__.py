"""Model adapters: one per file format, behind one small interface (`ModelAdapter`).

    from mia_audit.models import load_model, normalize_outputs

    model = load_model(path=Path("model.onnx"))
    model.check_input(x[:2], data_name="members.csv")
    raw = model.predict_raw(x, batch_size=4096)
    scores, kind = normalize_outputs(raw=raw, output_kind="auto",
                                     native_kind=model.native_output_kind, source=str(model.path))

Importing this package registers the built-in formats (onnx, torchscript).
"""

from mia_audit.models import onnx_adapter as _onnx_adapter  # noqa: F401  (registers "onnx")
from mia_audit.models import torchscript_adapter as _torchscript_adapter  # noqa: F401  (registers "torchscript")
from mia_audit.models.base import ModelAdapter, OutputKind, RequestedOutputKind, normalize_outputs
from mia_audit.models.registry import available_formats, load_model, register_adapter

__all__ = [
    "ModelAdapter",
    "OutputKind",
    "RequestedOutputKind",
    "available_formats",
    "load_model",
    "normalize_outputs",
    "register_adapter",
]
