"""The forward of a detector done by a Triton server: :func:`triton_detector` gives the reference detector
(:mod:`jitvision.yolov5.detect`) a module that sends each letterboxed batch to ``/v2/models/NAME/infer`` with the
binary tensor extension (no JSON-encoded pixels) and returns the raw rows, so letterbox, NMS and box scaling stay
local and exactly those of a local model. The contract (names, stride, letterbox mode) comes from the server's
model config, where ``triton export`` put it.

The client library is Triton's own ``tritonclient[http]``, installed with the server by ``make triton-env``; run
this with that environment's Python. Exit codes, as for the C++ ``detect --server``: server unreachable or model not
ready (after the retries) -> 8, model missing or not a detector -> 3.
"""
import itertools
import json
import time
from typing import Dict, Tuple

import torch

from jitvision.errors import DeviceError, InferenceServerError, ModelError
from jitvision.triton.export import INPUT_NAME, OUTPUT_NAME, PARAMETER_PREFIX
from jitvision.yolov5.detect import Detector

_DTYPES = {"TYPE_FP32": torch.float32, "TYPE_FP16": torch.float16}


def _http():
    try:
        import tritonclient.http as http
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise DeviceError("tritonclient is not installed here: run with .venv-triton/bin/python "
                          "(`make triton-env`)") from None
    return http, InferenceServerException


def server_address(url: str) -> str:
    """host:port, as tritonclient takes it, from ``http://host:port`` or ``host:port``."""
    return url.split("://", 1)[-1].rstrip("/")


def back_off_s(attempt: int) -> float:
    """The pause before retry ``attempt`` (0-based), as the C++ client: 0.2 s doubling, at most 2 s."""
    return min(2.0, 0.2 * 2 ** min(attempt, 4))


def with_retry(call, retries: int, address: str):
    """``call()``, retrying a refused or dropped connection ``retries`` times with back-off (:func:`back_off_s`);
    InferenceServerError (exit code 8) when the server stays unreachable."""
    for attempt in itertools.count():
        try:
            return call()
        except OSError as exc:
            if attempt >= retries:
                raise InferenceServerError(f"Triton server {address} unreachable after {retries} retries: "
                                           f"{exc}") from None
            time.sleep(back_off_s(attempt))


class TritonForward:
    """Callable like a TorchScript detector: tensor [N, 3, H, W] -> (rows [N, R, 5 + nc],)."""

    def __init__(self, client, model: str, address: str, retries: int = 5):
        self.client, self.model, self.address, self.retries = client, model, address, retries
        self.http, self.server_error = _http()

    def _infer_once(self, x: torch.Tensor):
        array = x.contiguous().numpy()
        request = self.http.InferInput(INPUT_NAME, list(array.shape), "FP16" if array.dtype.itemsize == 2 else "FP32")
        request.set_data_from_numpy(array, binary_data=True)
        wanted = self.http.InferRequestedOutput(OUTPUT_NAME, binary_data=True)
        return self.client.infer(self.model, [request], outputs=[wanted]).as_numpy(OUTPUT_NAME)

    def __call__(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        try:
            return (torch.from_numpy(with_retry(lambda: self._infer_once(x), self.retries, self.address).copy()),)
        except self.server_error as exc:
            raise ModelError(f"Triton refused the request for model '{self.model}': {exc.message()}") from None


def model_config(client, model: str, address: str, retries: int) -> Dict:
    """The server's config of ``model``: ModelError when the server has no such model, InferenceServerError when it
    stays unreachable or the model stays not ready through ``retries`` retries."""
    _, server_error = _http()

    def ask() -> Dict:
        if not client.is_model_ready(model):
            raise _NotReady(_index_state(client, model))
        return client.get_model_config(model)

    for attempt in itertools.count():
        try:
            return with_retry(ask, retries, address)
        except server_error as exc:
            raise ModelError(f"Triton cannot describe model '{model}': {exc.message()}") from None
        except _NotReady as not_ready:
            state = not_ready.args[0]
            if state is None:
                raise ModelError(f"Triton server {address} has no model '{model}' "
                                 "(see its /v2/repository/index)") from None
            if attempt >= retries:
                raise InferenceServerError(f"model '{model}' on Triton server {address} is not ready "
                                           f"(state {state})") from None
            time.sleep(back_off_s(attempt))


class _NotReady(Exception):
    """The model is not ready; args[0] is its state in the repository index, or None when the index lacks it."""


def _index_state(client, model: str):
    for entry in client.get_model_repository_index():
        if entry.get("name") == model:
            return entry.get("state", "UNKNOWN")
    return None


def triton_detector(url: str, model: str, timeout_s: float = 30.0, retries: int = 5) -> Detector:
    """A :class:`Detector` whose forward runs on the Triton server at ``url`` under the name ``model``."""
    http, _ = _http()
    address = server_address(url)
    client = http.InferenceServerClient(address, connection_timeout=timeout_s, network_timeout=timeout_s)
    config = model_config(client, model, address, retries)
    params = {k[len(PARAMETER_PREFIX):]: v["string_value"] for k, v in config.get("parameters", {}).items()
              if k.startswith(PARAMETER_PREFIX)}
    if params.get("task") != "detect":
        raise ModelError(f"Triton model '{model}' is not a jitvision detector (its config has no "
                         f"{PARAMETER_PREFIX}task 'detect': export it with `python -m jitvision triton export`)")
    try:
        dynamic = json.loads(params["dynamic"])
        fixed = None if dynamic else tuple(json.loads(params["input_shape"]))
        forward = TritonForward(client, model, address, retries)
        return Detector(forward, json.loads(params["names"]), int(params["stride"]), params["letterbox"] == "rect",
                        int(params["img_size"]), fixed, _DTYPES[config["input"][0]["data_type"]], params["origin"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"Triton model '{model}' has incomplete jitvision parameters: {exc!r}") from None
