"""BOP-format I/O (datasets, results CSV, CNOS detection JSON), pose-error metrics and AR.

Millimetres exist only at this boundary; everything returned is in metres.
"""
