"""Which test modules `make test` starts first.

`make test` hands whole modules (a class of the soak is a unit of its own) to its workers in
collection order (--dist loadscope --no-loadscope-reorder); a module that takes minutes,
picked up last, would leave the other workers idle at the end.
"""

SLOWEST_MODULES = (
    "tecl_pipeline_tests/harness/test_soak.py",
    "tecl_pipeline_tests/harness/test_replay.py",
    "tecl_pipeline_tests/defs/test_ui_browser.py",
)
