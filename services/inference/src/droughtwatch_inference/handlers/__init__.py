"""Lambda entry points, one module per stage. The image's CMD (the function's image config
`commands`) names one of these; the stage registry (droughtwatch_contract.stages) is the one
place that spells their paths."""
