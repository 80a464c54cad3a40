import math
from pathlib import Path

import pytest

from parityscope.wire import encode_value
from workers.engines import vllm_v0, vllm_v1
from workers.vllm_smoke import main, smoke_legs


def test_every_smoke_leg_maps_onto_its_vllm_engine():
    for leg in smoke_legs("vllm-v0"):
        adapter = vllm_v0 if leg["engine"] == "vllm-v0" else vllm_v1
        kwargs = adapter.engine_kwargs(leg["settings"], Path("/ckpt"), leg["seed"])
        assert kwargs["model"] == "/ckpt"
    assert [leg["engine"] for leg in smoke_legs("vllm-v0")] == ["vllm-v0", "vllm-v1", "vllm-v1"]
    assert smoke_legs("vllm-v1")[0]["engine"] == "vllm-v1"


def test_non_finite_values_go_on_the_wire_as_strings():
    # The smoke script posts through the API's own encoding.
    assert encode_value(math.nan) == "NaN"
    assert encode_value(-math.inf) == "-Infinity"
    assert encode_value(0.25) == 0.25


def test_url_and_token_go_together(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--url", "http://localhost:8000"])
    assert exit.value.code == 2
    assert "--url and --token go together" in capsys.readouterr().err
