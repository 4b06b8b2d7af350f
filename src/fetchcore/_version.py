"""The version of fetchcore (read by the build, re-exported as ``fetchcore.__version__``)."""

__version__ = "0.2.0"
