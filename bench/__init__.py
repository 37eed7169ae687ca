"""The benchmark harness: idp against node-oidc-provider and a bare Starlette ceiling.

``make bench`` (``python -m bench``) starts every subject on loopback, drives each scenario with
a load generator in its own processes, and writes ``bench/results/<time>.json`` and
``bench/results/latest.md``. ``BENCH_QUICK=1`` (``python -m bench --quick``) is the short smoke
mode that tests run.
"""
