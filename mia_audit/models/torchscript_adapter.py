"""TorchScript modules (torch.jit.script / torch.jit.trace + save) run on the CPU.

TorchScript declares neither the input shape nor whether outputs are logits or probabilities:
`input_shape` is None (the lead validates with `check_input`, a trial forward pass) and
`native_output_kind` is None (detected from values, or set explicitly by the user). The input dtype
is the dtype of the module's first floating-point parameter, float32 when it has none.

torch is imported only when a TorchScript model is actually loaded, so ONNX-only runs do not pay
for it. torch's global thread settings are left as they are.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mia_audit.errors import ModelLoadError
from mia_audit.models.base import ModelAdapter, short_reason
from mia_audit.models.registry import register_adapter

__all__ = ["TorchScriptAdapter"]

_ZIP_MAGIC = b"PK\x03\x04"


def _torch_save_checkpoint_hint(path: Path) -> str | None:
    """A hint when `path` is a torch.save() archive (pickled weights) rather than TorchScript."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    has_code = any("/code/" in n or n.startswith("code/") for n in names)
    has_data_pkl = any(n.endswith("/data.pkl") or n == "data.pkl" for n in names)
    if has_data_pkl and not has_code:
        return (
            "it looks like a torch.save() checkpoint, not TorchScript; export the model with "
            "torch.jit.script(model).save(...) or torch.onnx.export(...)"
        )
    return None


@register_adapter("torchscript", suffixes=(".pt", ".pth", ".ts", ".torchscript"))
class TorchScriptAdapter(ModelAdapter):
    """A TorchScript classifier loaded with torch.jit.load on the CPU, run in inference mode."""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """TorchScript archives are zip files."""
        return head.startswith(_ZIP_MAGIC)

    def __init__(self, *, path: Path) -> None:
        super().__init__(path=path)
        import torch

        self._torch = torch
        hint = _torch_save_checkpoint_hint(self.path)
        if hint is not None:
            raise ModelLoadError(f"{self.path}: not a TorchScript model ({hint})")
        try:
            with warnings.catch_warnings():
                # torch >= 2.9 marks torch.jit.load deprecated; users still bring TorchScript files.
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(self.path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - every load failure is one line naming the file
            raise ModelLoadError(f"{self.path}: not a valid TorchScript model ({short_reason(exc)})") from None
        module.eval()
        self._module = module
        # Feed the dtype the weights have (a .double() model rejects float32 input).
        dtype = np.float32
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.is_floating_point():
                dtype = {torch.float64: np.float64, torch.float16: np.float16}.get(tensor.dtype, np.float32)
                break
        self._input_dtype = np.dtype(dtype)

    @property
    def input_dtype(self) -> np.dtype:
        """dtype of the module's first floating-point parameter (float32 when it has none)."""
        return self._input_dtype

    @property
    def module(self) -> Any:
        """The loaded torch.jit.ScriptModule (in eval mode)."""
        return self._module

    def runtime_info(self) -> dict[str, Any]:
        """torch version and its intra-op thread count."""
        return {
            "format": self.format_name,
            "torch": self._torch.__version__,
            "threads": self._torch.get_num_threads(),
        }

    def _describe_error(self, exc: BaseException) -> str:
        """The TorchScript interpreter puts the real error ("RuntimeError: mat1 and mat2 shapes
        cannot be multiplied ...") on the last line, after a serialized-code traceback."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if len(lines) > 1 and "TorchScript" in lines[0]:
            return short_reason(RuntimeError(lines[-1]))
        return short_reason(exc)

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        if not x.flags.writeable:  # torch.from_numpy warns on read-only arrays
            x = x.copy()
        with torch.inference_mode():
            out = self._module(torch.from_numpy(x))
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            out = out[0]
        elif isinstance(out, dict):
            tensors = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
            if "logits" in tensors:
                out = tensors["logits"]
            elif len(tensors) == 1:
                out = next(iter(tensors.values()))
        if not isinstance(out, torch.Tensor):
            raise ModelLoadError(
                f"{self.path}: model returned {type(out).__name__}; expected a tensor of class scores"
            )
        if not out.is_floating_point():
            raise ModelLoadError(
                f"{self.path}: model returned a {out.dtype} tensor; expected floating-point class scores"
            )
        return out.detach().to(torch.float64).numpy()
