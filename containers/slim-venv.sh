#!/bin/sh
# Trims the build stage's virtual environment before the runtime image copies it (2.9 GB -> under 2.5 GB):
# test suites and test binaries that no step imports or runs, and debug symbols of the packages' own shared
# libraries. Libraries that auditwheel vendored (the *.libs/ folders) are left whole: patchelf has rewritten them and
# strip breaks their program headers (scipy's OpenBLAS fails to load).
set -eu
site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
before="$(du -sm /opt/venv | cut -f1)"
find "${site}" -mindepth 2 -type d -name tests -prune -exec rm -rf {} +
rm -rf "${site}/torch/test" "${site}/onnx/backend/test/data" "${site}/torch/bin/protoc" "${site}/torch/bin/protoc-"* \
       "${site}/torch/bin/test_"* "${site}/torch/bin/"*Test "${site}/torch/bin/upgrader_models" \
       "${site}/torch/bin/script_module_v4.ptl"
find "${site}" -type f -name '*.so*' -not -path '*.libs/*' -exec strip --strip-unneeded {} +
echo "slim-venv: /opt/venv ${before} MiB -> $(du -sm /opt/venv | cut -f1) MiB"
