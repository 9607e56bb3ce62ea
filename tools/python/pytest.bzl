"""py_pytest: a py_test whose source files are collected and run by pytest."""

def py_pytest(name, srcs, deps = [], args = [], data = [], **kwargs):
    native.py_test(
        name = name,
        srcs = srcs + ["//tools/python:pytest_main.py"],
        main = "//tools/python:pytest_main.py",
        args = args + ["$(rootpath %s)" % src for src in srcs],
        deps = deps,
        data = data,
        # No generated __init__.py: tests/ imports its sibling helpers.
        legacy_create_init = False,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
