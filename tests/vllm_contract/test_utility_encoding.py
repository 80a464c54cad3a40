"""The weight update through the encoding vLLM 0.18.1 applies to utility calls, with vLLM's own code.

``AsyncLLM.collective_rpc`` and the offline ``LLM``'s multiprocess client send
``(client_index, call_id, "collective_rpc", (method, timeout, args, kwargs))`` through
``MsgpackEncoder.encode``; the engine core decodes it with an untyped ``MsgpackDecoder()`` and
passes the arguments on (converting only ``msgspec.Struct`` parameters). This test loads
``vllm/v1/serial_utils.py`` from the 0.18.1 wheel and runs that round trip. The module's
third-party imports are real (msgspec, pyzmq, cloudpickle, pydantic, numpy, torch); its imports
from the rest of vLLM, which would pull in vLLM's whole dependency tree, are replaced by small
stand-ins: the two ``envs`` values it reads (their defaults are read from the wheel's ``envs.py``,
with insecure serialization on, as the V1 adapter sets it), a logger, placeholder multimodal
classes (never used by these messages), and ``tensor_data``, executed from the wheel's own
``vllm/v1/utils.py``.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import types

import pytest
import torch

from tests.workers.test_vllm_driver import WEIGHTS, Worker, WorkerModel
from workers.engines.vllm_common import encode_weights, load_weights_on_worker

pytestmark = pytest.mark.vllm_contract

msgspec = pytest.importorskip("msgspec", reason="pip install msgspec pyzmq cloudpickle (make test-vllm-contract)")
pytest.importorskip("zmq", reason="pip install pyzmq (make test-vllm-contract)")
pytest.importorskip("cloudpickle", reason="pip install cloudpickle (make test-vllm-contract)")

_MULTIMODAL = ("BaseMultiModalField", "MultiModalBatchedField", "MultiModalFieldConfig", "MultiModalFieldElem",
               "MultiModalFlatField", "MultiModalKwargsItem", "MultiModalKwargsItems", "MultiModalSharedField")


def _env_default(envs_source: str, name: str) -> str:
    match = re.search(rf'os\.getenv\(\s*"{name}"\s*,\s*"([^"]*)"\s*\)', envs_source)
    assert match, f"{name} has no os.getenv default in envs.py"
    return match.group(1)


def _own_function(source: str, name: str, namespace: dict) -> None:
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module([node], []), f"vllm/v1/utils.py:{name}", "exec"), namespace)


@pytest.fixture
def serial_utils(v1_release, monkeypatch):
    envs_source = v1_release.source("envs.py")
    envs = types.SimpleNamespace(
        VLLM_MSGPACK_ZERO_COPY_THRESHOLD=int(_env_default(envs_source, "VLLM_MSGPACK_ZERO_COPY_THRESHOLD")),
        VLLM_ALLOW_INSECURE_SERIALIZATION=True,
    )
    logger = logging.getLogger("vllm-contract")
    logger.warning_once = logger.warning  # type: ignore[attr-defined]
    utils_namespace: dict = {"torch": torch}
    _own_function(v1_release.source("v1/utils.py"), "tensor_data", utils_namespace)
    stubs = {
        "vllm": types.ModuleType("vllm"),
        "vllm.logger": types.SimpleNamespace(init_logger=lambda name: logger),
        "vllm.multimodal": types.ModuleType("vllm.multimodal"),
        "vllm.multimodal.inputs": types.SimpleNamespace(
            **{name: type(name, (), {}) for name in _MULTIMODAL}, NestedTensors=object),
        "vllm.utils": types.ModuleType("vllm.utils"),
        "vllm.utils.platform_utils": types.SimpleNamespace(is_pin_memory_available=lambda: False),
        "vllm.v1": types.ModuleType("vllm.v1"),
        "vllm.v1.utils": types.SimpleNamespace(tensor_data=utils_namespace["tensor_data"]),
    }
    stubs["vllm"].envs = envs  # type: ignore[attr-defined]
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    module = types.ModuleType("vllm_0181_serial_utils")
    exec(compile(v1_release.source("v1/serial_utils.py"), "vllm-0.18.1/vllm/v1/serial_utils.py", "exec"),
         module.__dict__)
    return module


def _utility_round_trip(serial_utils, method, args: tuple) -> tuple:
    """What the engine core's utility handler receives for ``collective_rpc(method, args=args)``."""
    request = (0, 12345, "collective_rpc", (method, None, args, None))
    frames = serial_utils.MsgpackEncoder().encode(request)
    frames = [bytes(frame) for frame in frames]  # as they leave the socket
    client_index, call_id, method_name, received = serial_utils.MsgpackDecoder().decode(frames)
    assert (client_index, call_id, method_name) == (0, 12345, "collective_rpc")
    return tuple(received)


def test_the_safetensors_payload_arrives_usable(serial_utils):
    payload = encode_weights(WEIGHTS)
    method, timeout, args, kwargs = _utility_round_trip(serial_utils, load_weights_on_worker, (payload,))
    assert method is load_weights_on_worker and timeout is None and kwargs is None
    model = WorkerModel()
    assert method(Worker(model), *args) == len(WEIGHTS)
    assert torch.equal(model.lm_head.weight, WEIGHTS["lm_head.weight"])


def test_tensors_themselves_arrive_as_lists_which_is_why_the_payload_is_bytes(serial_utils):
    big = torch.zeros(256, 128)  # above the zero-copy threshold, like any real weight
    _, _, args, _ = _utility_round_trip(serial_utils, load_weights_on_worker, ([("w", big)],))
    name, arrived = args[0][0]
    assert name == "w" and not isinstance(arrived, torch.Tensor)
    assert arrived[:2] == ["float32", [256, 128]]
