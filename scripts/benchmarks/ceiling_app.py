"""The ceiling of the inference server's stack: an ASGI app that reads the body and answers a
constant. Served by uvicorn (httptools, uvloop) in the inference image, as its workers serve
the real app; no model, no parsing: what no server on this stack can beat."""

BODY = b'{"predictions": [150.0]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    """Read the request's body, whatever it is, and answer BODY (/ping too)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
