"""Side-by-side benchmarks of jobhandle against its peers (a script, not part of the package or the tests).

A package so that ``bench._huey_app`` has the same module name in the benchmark process and in
``huey_consumer``: Huey finds a task by ``module.function``.
"""
