"""Fast JSON responses for large payloads (series, comparisons)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def orjson_response(content: Any, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
        status_code=status_code,
        media_type="application/json",
    )
