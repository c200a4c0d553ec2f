"""Generates the gRPC stubs from proto/ when the package is built.

The .proto files are the repository's proto/ directory (two levels up), or
the directory named by DTMD_PROTO_DIR. The generated modules land in
src/dtmd_client/_proto/ (not committed) and are packaged from there.
"""

from __future__ import annotations

import os
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).resolve().parent
# The protos the client needs; the paths are relative to proto/.
PROTOS = ["dtmgimp.proto", "workflow.proto", "dtmd/admin/v1/admin.proto"]
PACKAGE_PATH = "dtmd_client/_proto"


def _proto_dir() -> pathlib.Path:
    candidates = [os.environ.get("DTMD_PROTO_DIR", ""), HERE.parent.parent / "proto", HERE / "proto"]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / PROTOS[0]).is_file():
            return pathlib.Path(candidate).resolve()
    raise RuntimeError("proto/ not found: set DTMD_PROTO_DIR to the directory holding dtmgimp.proto")


def generate_stubs() -> None:
    import grpc_tools
    from grpc_tools import protoc

    proto_dir = _proto_dir()
    out_dir = HERE / "src"
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    # Mapping proto/ to dtmd_client/_proto makes the generated imports
    # package-relative ("from dtmd_client._proto import dtmgimp_pb2").
    args = [
        "grpc_tools.protoc",
        f"-I{PACKAGE_PATH}={proto_dir}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    ] + [f"{PACKAGE_PATH}/{name}" for name in PROTOS]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    # Every generated directory becomes a package.
    for directory in [out_dir / PACKAGE_PATH, *(out_dir / PACKAGE_PATH).rglob("*")]:
        if directory.is_dir():
            (directory / "__init__.py").touch()


# Generated before setuptools looks for packages, so that every build step
# (metadata, wheel, sdist) sees them.
generate_stubs()
setup(packages=find_packages("src"))
