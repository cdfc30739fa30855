"""Lambda entry points, one module per stage. The image's CMD (the function's image config
`commands`) names one of these; this mapping is the one place that spells them."""

HANDLERS: dict[str, str] = {
    "processing": "droughtwatch_inference.handlers.processing.handler",
    "inference": "droughtwatch_inference.handlers.inference.handler",
    "observe": "droughtwatch_inference.handlers.observe.handler",
}
