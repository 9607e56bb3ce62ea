"""Repository rule: <workspace>/.venv/bin/python as the Python toolchain.

`py_runtime.interpreter_path` must be absolute and Bazel 4 does not expand
%workspace% in flags, so the path is computed when the repository is fetched.
The venv's own bin/python must be what runs (not a runfiles copy), or Python
would not see the venv's site-packages. Override with
--repo_env=BAZEL_VENV_PYTHON=/abs/path/to/python.
"""

def _venv_python_impl(rctx):
    python = rctx.os.environ.get("BAZEL_VENV_PYTHON", "")
    if not python:
        root = rctx.path(Label("//tools/python:venv_toolchain.bzl")).dirname.dirname.dirname
        python = "%s/%s/bin/python" % (root, rctx.attr.venv_path)
    if not rctx.path(python).exists:
        fail("No Python interpreter at %s: run ./scripts/ensure_venv.sh first." % python)
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py2_runtime = None,
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(python = python))

venv_python = repository_rule(
    implementation = _venv_python_impl,
    attrs = {"venv_path": attr.string(default = ".venv")},
    environ = ["BAZEL_VENV_PYTHON"],
    local = True,
)
