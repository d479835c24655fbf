"""The Python peer of `GET /api/v1/agents/status` for `cargo bench --bench gateway`.

FastAPI on uvicorn, one worker, the same route shape as the osmen gateway: the
X-API-Key header compared in constant time, 401 with a JSON error otherwise, and per
agent the figures the gateway answers, rebuilt per request from stored per-agent state
(the gateway computes them from its windows on every request too).

    python3 status_peer.py PORT STATUS_JSON KEY
"""
import hmac
import json
import sys

import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

port, sample_file, key = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
with open(sample_file) as f:
    state = json.load(f)["agents"]

app = FastAPI()


@app.get("/api/v1/agents/status")
async def status(x_api_key: str | None = Header(default=None)):
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), key):
        return JSONResponse(
            status_code=401,
            content={"error": {"code": 401, "message": "missing or wrong X-API-Key"}},
        )
    return {"agents": {name: dict(fig) for name, fig in state.items()}}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
