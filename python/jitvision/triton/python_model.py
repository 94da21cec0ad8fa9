"""The Python-backend model that ``triton export --backend python`` copies into ``REPO/NAME/1/model.py``.

It runs inside Triton's Python backend (which provides ``triton_python_backend_utils``), loads the TorchScript file
beside it with torch, and runs each batch Triton's dynamic batcher hands over as one forward per input shape:
requests of the same [C, H, W] are concatenated, run once and split again. Only torch is needed in the server's
Python environment; the file was checked by jitvision's model firewall when it was exported.
"""
import json
import os

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

INPUT_NAME = "INPUT__0"
OUTPUT_NAME = "OUTPUT__0"
MODEL_FILE = "model.pt"


class TritonPythonModel:
    def initialize(self, args):
        gpu = args["model_instance_kind"] == "GPU"
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        path = os.path.join(args["model_repository"], args["model_version"], MODEL_FILE)
        self.module = torch.jit.load(path, map_location=self.device).eval()
        config = json.loads(args["model_config"])
        self.input_dtype = torch.float16 if config["input"][0]["data_type"] == "TYPE_FP16" else torch.float32

    def _forward(self, inputs):
        """One forward over the concatenated inputs; the output split back per request."""
        with torch.no_grad():
            x = torch.from_numpy(np.concatenate(inputs)).to(self.device, self.input_dtype)
            out = self.module(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return torch.split(out.cpu(), [len(i) for i in inputs])

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        by_shape = {}
        for index, array in enumerate(arrays):
            by_shape.setdefault(array.shape[1:], []).append(index)
        responses = [None] * len(requests)
        for indices in by_shape.values():
            try:
                outputs = self._forward([arrays[i] for i in indices])
            except RuntimeError as exc:
                error = pb_utils.TritonError(f"forward failed: {str(exc).splitlines()[0]}")
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                continue
            for i, out in zip(indices, outputs):
                responses[i] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, out.numpy())])
        return responses
