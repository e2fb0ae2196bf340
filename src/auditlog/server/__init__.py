"""The HTTP layer: our own thin ASGI application on uvicorn."""
