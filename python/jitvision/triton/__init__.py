"""Triton Inference Server: a model repository for our models (:mod:`.export`), the ``tritonserver`` that the
``nvidia-pytriton`` wheel bundles, for local trials and the tests (:mod:`.serve`), and a detector whose forward runs
on a server (:mod:`.client`). Production runs NVIDIA's server image on the same repository; docs/scale-out.md has
the architecture."""
