"""droughtwatch_contract: what the Lambda service and the Pulumi program must agree on.

The stage registry (stages.py), the handlers' settings models (settings.py), the S3 key layout
(keys.py), the state machine definition (statemachine.py), the stack output names
(outputs.py) and the drift rule (drift.py). pydantic and the standard library only, so that a
deploy needs neither torch nor Evidently.
"""
