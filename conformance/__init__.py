"""loss-conformance: property-based checks of loss functions against their YAML specs."""
__version__ = "0.1.0"
