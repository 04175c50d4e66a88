"""The modules protoc generates from rpc/crunch/v1/crunch.proto, under one name.

They are generated at build time, never committed: the build writes them to
<build>/clients/python/gen/crunch/v1/, which joins this package through
pkgutil.extend_path in crunch/__init__.py when that directory is on sys.path;
`cmake --install` puts them in crunch/v1/ next to the package instead.
"""

from __future__ import annotations

try:
    from crunch.v1 import crunch_pb2 as pb
    from crunch.v1 import crunch_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "crunch: the generated modules crunch.v1.crunch_pb2 and crunch_pb2_grpc are missing. "
        "Build them (cmake --build --preset release --target crunch_python_stubs) and put "
        "<build>/clients/python/gen on PYTHONPATH next to clients/python, or install the "
        "package with cmake --install; see clients/python/README.md"
    ) from e

__all__ = ["pb", "pb_grpc"]
