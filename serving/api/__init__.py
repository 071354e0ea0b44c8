"""The HTTP service: the BentoML service and its request types, the OpenAPI document kept true, and a real
`bentoml serve` process to run or talk to."""
