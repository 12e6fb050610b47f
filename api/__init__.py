"""The REST service: FastAPI app (``api.main``), routers per resource (``api.routes``), pydantic schemas.

Data flows ``api → storage ← tuner``: this package never imports torch (``tests/api`` checks it).
"""
