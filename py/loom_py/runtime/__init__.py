"""The machinery that runs a flow: bridge, warm image, flowkit, data objects, events, errors."""
