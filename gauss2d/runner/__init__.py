"""Running many images: the dataset runner (resume, batches, devices), preflight, outputs, hosts.

Shared by the fit and codec command lines (``experiments/``); above the
training engine and the compression workflow.
"""
